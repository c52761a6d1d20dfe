"""Observing every host at once, with a deadline: a host that does not answer costs the
others nothing but, once, that deadline.

A host that black-holes packets never says no. A new connection to it waits out the
engine's connect timeout (5 s), and a kept-alive connection to a host gone dark waits out
the whole read timeout (60 s, measured on a namespace host whose packets were dropped):
waiting for every answer would hold every change on every other host that long.

So an :class:`Observer` gives each host's answer until a deadline (``timeout``, default
:data:`DEFAULT_TIMEOUT`, or more for a host whose own recent answers were slow, see
:meth:`Observer.allowance`). A host that has not answered by then is reported unreachable
for this pass (``no answer within N s``: planning gives it the grace period of any
unreachable host, from the host memory), while its observation goes on in a thread of its
own. The Observer keeps that observation across passes (the service has one for its whole
life): never two of the same host in flight, and a later pass uses its answer when it has
come, whatever it says (the host's state, or why it is unreachable), then asks again.

A host that did not answer in time, or answered that it is unreachable, is *late* until an
answer of its comes in time. A pass asks a late host again only when its last observation
has come back, and gives it :data:`LATE_GRACE` to answer, not the whole timeout: a host that
stays dark costs the first pass at most the timeout, and each later one at most that grace
(nothing while its observation is still in flight), while one that is back is seen by the
next pass. When a late host's observation comes back with its state after its pass went
on, ``on_answer`` is told (the service wakes a pass: it is seen at once, not at the next
resync).

Why the answer of an earlier pass may be used: a host is only ever changed by a pass in
which it answered in time, and such a pass leaves no observation of it in flight. So an
observation still in flight started after the last change made to its host, and what it
says is as current as any list call.
"""

from __future__ import annotations

import functools
import queue
import statistics
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from reconciler.apply.runtime import HostRuntime
from reconciler.core.model import HostState

#: Seconds a host has to answer a pass's list call before the pass goes on without it. Twice
#: the engine's connect timeout (a handshake whose first SYN was lost, plus a slow list
#: call, still fits), and ten times what a list of 10,000 containers takes on this machine
#: (~1 s): a slow but connected host is not taken for a dark one.
DEFAULT_TIMEOUT = 10.0
#: A host is given this many times its usual answer time, when that is more than ``timeout``.
PACE_FACTOR = 3.0
#: Seconds a late host is given to answer again (at most ``timeout``): time enough for an
#: engine that is back to answer a list call, short enough that one still dark costs little.
LATE_GRACE = 0.25
_PACE_SAMPLES = 5  # the answers whose median is "usual"


class _Workers:
    """Daemon threads kept for the process's life (every Observer's: the CLI makes one per
    look), one more only when none is free.

    A thread started for every host of every pass costs the pass its start-up handshake
    (``Thread.start`` waits until the new thread runs, behind every other thread wanting
    the GIL: ~0.7 ms a host, 14 ms of a 20-host pass on 2 busy cores). Daemon threads,
    unlike ``ThreadPoolExecutor``'s: a one-shot CLI exits without waiting for a dark host's
    socket to time out. At most one observation per host is in flight, so the threads
    number at most the hosts observed at once (plus those dark hosts' observations hold)."""

    def __init__(self) -> None:
        self._tasks: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)

    def submit(self, task: Callable[[], None]) -> None:
        """Run ``task`` in a thread that is free, or in a new one. The task calls
        :meth:`finishing` just before it tells anyone it is done, so that a thread about to
        be free counts as free when that news makes the caller submit again."""
        self._tasks.put(task)
        if not self._idle.acquire(blocking=False):  # no thread free or about to be
            threading.Thread(target=self._work, name="observe", daemon=True).start()

    def finishing(self) -> None:
        self._idle.release()

    def _work(self) -> None:
        while True:
            self._tasks.get()()


_WORKERS = _Workers()


@dataclass
class _Flight:
    """One observation of one host, in a thread of its own (a daemon thread: a one-shot CLI
    exits without waiting for a dark host's socket to time out)."""

    runtime: HostRuntime
    volumes: bool | None
    started: float
    done: threading.Event = field(default_factory=threading.Event)
    state: HostState | None = None
    failure: BaseException | None = None
    seconds: float = 0.0

    def covers(self, volumes: bool | None) -> bool:
        """Whether its answer holds what a caller asking for ``volumes`` needs."""
        return self.volumes is True or self.volumes == volumes


class Observer:
    """Every host's state, each observed at once and waited for until its deadline.

    ``timeout``: the deadline (seconds); ``on_answer``: told the name of a late host whose
    observation came back with its state (from that observation's thread); ``clock``: a
    monotonic clock (tests pass their own).
    """

    def __init__(
        self,
        timeout: float = DEFAULT_TIMEOUT,
        *,
        on_answer: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"the observation timeout must be positive, not {timeout}")
        self.timeout = timeout
        self.on_answer = on_answer
        self._clock = clock
        self._changed = threading.Condition()
        self._flights: dict[str, _Flight] = {}
        self._late: dict[str, str] = {}  # host -> why it is unreachable, until it answers
        self._paces: dict[str, list[float]] = {}  # host -> its last answers' seconds

    def allowance(self, host: str) -> float:
        """The seconds ``host`` has to answer: ``timeout``, or ``PACE_FACTOR`` times the
        median of its last answers when that is more (a host with many containers)."""
        paces = self._paces.get(host)
        usual = statistics.median(paces) if paces else 0.0
        return max(self.timeout, PACE_FACTOR * usual)

    def in_flight(self) -> list[str]:
        """The hosts whose observation has not come back yet."""
        with self._changed:
            return sorted(n for n, f in self._flights.items() if not f.done.is_set())

    def observe(
        self, runtimes: Mapping[str, HostRuntime], volumes: bool | None = None
    ) -> dict[str, HostState]:
        """Every host's state, as its ``observe(volumes)`` says, or unreachable when it has
        not answered by its deadline (a late host: ``LATE_GRACE`` after it was asked)."""
        with self._changed:
            flights = {name: self._flight(name, r, volumes) for name, r in runtimes.items()}
            deadlines = {
                name: flight.started
                + (min(self.timeout, LATE_GRACE) if name in self._late else self.allowance(name))
                for name, flight in flights.items()
            }
            while True:
                now = self._clock()
                waiting = [
                    deadline
                    for name, deadline in deadlines.items()
                    if not flights[name].done.is_set() and deadline > now
                ]
                if not waiting:
                    break
                self._changed.wait(min(waiting) - now)
            return {name: self._take(name, flight) for name, flight in flights.items()}

    # -- under the lock --------------------------------------------------------------------
    def _flight(self, name: str, runtime: HostRuntime, volumes: bool | None) -> _Flight:
        """The host's observation in flight, or its answer not used yet, or a new one."""
        flight = self._flights.get(name)
        if (
            flight is not None
            and flight.runtime is runtime
            and (not flight.done.is_set() or flight.covers(volumes))
        ):
            return flight
        flight = _Flight(runtime, volumes, self._clock())
        self._flights[name] = flight
        _WORKERS.submit(functools.partial(self._run, name, flight))
        return flight

    def _take(self, name: str, flight: _Flight) -> HostState:
        """What a pass gets for one host: the answer (used once), or why there is none."""
        if not flight.done.is_set():
            waited = self._clock() - flight.started
            allowed = self.allowance(name)
            if waited < allowed and name in self._late:  # asked again, not answered yet
                why = self._late[name]
            else:
                why = f"no answer within {allowed:g} s (still asking)"
                self._late[name] = why
            return HostState(name, reachable=False, error=why)
        del self._flights[name]
        if flight.failure is not None:
            raise flight.failure
        assert flight.state is not None
        if flight.state.reachable:
            self._late.pop(name, None)
        else:
            self._late[name] = flight.state.error or "unreachable"
        return flight.state

    # -- in the flight's thread --------------------------------------------------------------
    def _run(self, name: str, flight: _Flight) -> None:
        try:
            flight.state = flight.runtime.observe(flight.volumes)
        except BaseException as exc:  # handed to the pass that takes this answer
            flight.failure = exc
        _WORKERS.finishing()  # before the news: the next pass finds this thread free
        with self._changed:
            flight.seconds = self._clock() - flight.started
            if flight.state is not None and flight.state.reachable:
                paces = self._paces.setdefault(name, [])
                paces.append(flight.seconds)
                del paces[:-_PACE_SAMPLES]
            flight.done.set()
            late = name in self._late and self._flights.get(name) is flight
            self._changed.notify_all()
        if late and flight.state is not None and flight.state.reachable and self.on_answer:
            self.on_answer(name)
