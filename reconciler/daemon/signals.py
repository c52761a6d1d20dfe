"""SIGTERM and SIGINT for ``reconciler run``: the handler only sets a flag.

A Python signal handler runs in the main thread between two bytecodes, wherever that
thread is: inside a lock it holds, inside the logging module writing a line, inside
another run of the same handler. A handler that logs, takes the loop's lock or changes
signal dispositions can deadlock or lose the next signal (a second SIGTERM arriving while
the first was handled once left the service deaf to every later one). So the handler here
stores the signal number and returns; ``signal.set_wakeup_fd`` has the interpreter write
that number to a pipe, and a thread of its own reads the pipe and does the work, off the
signal path and off the serving threads:

- the first signal calls ``on_stop`` (stop taking work; the pass in progress finishes)
  and arms a timer that exits after ``stop_timeout`` seconds if the pass overruns;
- a second signal exits at once, with the status a death by that signal would give.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignals:
    """Installed by :meth:`install` (main thread only), removed by :meth:`close`."""

    def __init__(self, on_stop: Callable[[], None], stop_timeout: float) -> None:
        self._on_stop = on_stop
        self._stop_timeout = stop_timeout
        self.last: int | None = None  # the flag the handler sets
        self.received = 0  # signals seen by the watcher thread
        self._pipe: tuple[int, int] | None = None
        self._previous: dict[int, Any] = {}
        self._previous_fd = -1
        self._thread: threading.Thread | None = None

    def install(self) -> bool:
        """Install the handlers; False (nothing done) when not on the main thread."""
        if threading.current_thread() is not threading.main_thread():
            return False
        read_end, write_end = os.pipe()
        os.set_blocking(write_end, False)  # a burst of signals never blocks the handler
        self._pipe = (read_end, write_end)
        self._previous_fd = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handler)
        self._thread = threading.Thread(target=self._watch, name="signals", daemon=True)
        self._thread.start()
        return True

    def _handler(self, signum: int, _frame: Any) -> None:
        self.last = signum  # nothing else: the watcher thread acts on the pipe's byte

    def _watch(self) -> None:
        assert self._pipe is not None
        read_end = self._pipe[0]
        while True:
            try:
                data = os.read(read_end, 64)
            except OSError:
                return  # closed
            if not data or 0 in data:
                return  # closed (see close)
            for signum in data:
                if signum not in STOP_SIGNALS:
                    continue
                self.received += 1
                if self.received == 1:
                    log.info("signal %d: finishing the current pass, then exiting", signum)
                    timer = threading.Timer(self._stop_timeout, _exit_now, args=(1,))
                    timer.daemon = True
                    timer.start()
                    self._on_stop()
                else:
                    log.warning("signal %d again: exiting now", signum)
                    _exit_now(128 + signum)

    def close(self) -> None:
        """Put back what was there before (a test may run several services in turn)."""
        if self._pipe is None:
            return
        with contextlib.suppress(ValueError):  # not the main thread: leave them
            signal.set_wakeup_fd(self._previous_fd)
            for signum, previous in self._previous.items():
                signal.signal(signum, previous)
        read_end, write_end = self._pipe
        self._pipe = None
        with contextlib.suppress(OSError):
            os.write(write_end, b"\0")  # the watcher's cue to return before the pipe closes
        if self._thread is not None:
            self._thread.join(timeout=1.0)
        os.close(write_end)
        os.close(read_end)


def _exit_now(status: int) -> None:
    if status == 1:
        log.error("did not stop in time: exiting")
    os._exit(status)
