"""``reconciler validate`` on every core: files are loaded and checked in worker processes.

Loading (libyaml's events composed into values with positions) and the checks of each
object take nearly all of the command's time, and every file is independent of the others.
So, when there is enough input, ``validate_paths`` reads every file here, cuts them into
runs of consecutive files, forks one worker per further CPU, and every process (this one
included) checks the next run from a shared queue until none is left. A worker sends back
its diagnostics and, for each object, only what the checks across objects need
(``tree.tree_facts``), because pickling whole manifests cost more than the second
core saved. The parent puts the runs back in file order and runs those checks
(``tree.finish``), so that the diagnostics, their order, the counts and the exit
code are exactly those of ``validate(load_paths(...))``.

Small inputs, platforms without ``fork`` and processes that already run threads stay in
one process. A worker that fails or dies is not trusted: the runs it took are done again
here, so a bug raises the same exception as it would in one process.
"""

from __future__ import annotations

import contextlib
import gc
import os
import pickle
import signal
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.check.policy import Policy
from reconciler.check.tree import TreeFacts, finish, tree_facts
from reconciler.check.validate import DEFAULT_POLICY, check_manifest
from reconciler.core.model import Diagnostic
from reconciler.source.load import SourceLimits, parse_bytes, read_source

#: Less input than this is checked in one process: a fork, a pickle and a second
#: interpreter's page faults cost more than half of so little work.
MIN_PARALLEL_BYTES = 256 * 1024

#: Runs of files per process (see _check_runs): enough that the last run to finish is short.
RUNS_PER_PROCESS = 48

_Inputs = Sequence[tuple[str, bytes]]


@dataclass
class Validated:
    """What ``reconciler validate`` reports: the files read, the objects found in them, and
    every error and warning, sorted by file and position."""

    files: list[str]
    objects: int
    diagnostics: list[Diagnostic]

    @property
    def valid(self) -> bool:
        return not any(d.is_error for d in self.diagnostics)


@dataclass
class _Run:
    """The result of checking one contiguous run of files, in file order."""

    files: list[str]
    objects: int
    load_diagnostics: list[Diagnostic]
    object_diagnostics: list[Diagnostic]
    facts: list[TreeFacts | None]


def validate_paths(
    paths: Iterable[str],
    stdin: Any = None,
    *,
    workers: int | None = None,
    min_bytes: int = MIN_PARALLEL_BYTES,
    exclude: Sequence[str] = (),
    limits: SourceLimits | None = None,
    policy: Policy = DEFAULT_POLICY,
) -> Validated:
    """Load and validate every file under ``paths`` (``-`` is stdin), using every core.

    ``workers`` is the number of processes, this one included (default: the CPUs this
    process may run on); input smaller than ``min_bytes`` is checked in this process.
    Raises InputError, before any checking, for a path that cannot be read; ``limits``
    bound what is read (``source.load.SourceLimits``); ``policy`` is the operator's
    (``check.policy``).
    """
    source = read_source(paths, stdin, limits=limits, exclude=exclude)
    inputs = source.inputs
    count = _process_count(inputs, _cpus() if workers is None else workers, min_bytes)
    # The composer keeps every container it makes, so the collector's passes over the
    # older generations walk an ever larger heap without finding any garbage: about a
    # quarter of the loading time. Nothing here makes reference cycles worth collecting.
    collecting = gc.isenabled()
    gc.disable()
    try:
        runs = _check_runs(inputs, count, policy) if count > 1 else [_check_run(inputs, policy)]
        diagnostics = [*source.diagnostics, *(d for run in runs for d in run.load_diagnostics)]
        for run in runs:
            diagnostics.extend(run.object_diagnostics)
        return Validated(
            files=[*source.refused, *(name for run in runs for name in run.files)],
            objects=sum(run.objects for run in runs),
            diagnostics=finish(diagnostics, [fact for run in runs for fact in run.facts]),
        )
    finally:
        if collecting:
            gc.enable()


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def _process_count(inputs: _Inputs, workers: int, min_bytes: int) -> int:
    """How many processes to use: one unless there is enough input and forking is safe."""
    if workers <= 1 or len(inputs) < 2 or not hasattr(os, "fork"):
        return 1
    if threading.active_count() > 1:  # a fork copies no threads, but their locks
        return 1
    if sum(len(data) for _, data in inputs) < min_bytes:
        return 1
    return min(workers, len(inputs))


def _split(inputs: _Inputs, count: int) -> list[_Inputs]:
    """``count`` contiguous, non-empty runs of about the same number of bytes."""
    total = sum(len(data) for _, data in inputs) or 1
    runs: list[_Inputs] = []
    start, seen = 0, 0
    for index, (_, data) in enumerate(inputs):
        seen += len(data)
        left = count - len(runs) - 1  # runs still to cut after this one
        if left == 0:
            break
        # cut after this file once the run has its share, or when only one file is left
        # for each of the remaining runs
        if seen * count >= total * (len(runs) + 1) or len(inputs) - (index + 1) == left:
            runs.append(inputs[start : index + 1])
            start = index + 1
    runs.append(inputs[start:])
    return runs


def _check_run(inputs: _Inputs, policy: Policy = DEFAULT_POLICY) -> _Run:
    """Parse ``inputs`` and run every single-object check (the work a worker does).

    File by file, each file's manifests dropped once checked and their facts kept: the
    memory in use stays at about one file's values instead of growing to the whole run's.
    """
    run = _Run([], 0, [], [], [])
    for filename, data in inputs:
        loaded = parse_bytes(data, filename, manifests_only=True)
        run.files.extend(loaded.files)
        run.objects += len(loaded.manifests)
        run.load_diagnostics.extend(loaded.diagnostics)
        for manifest in loaded.manifests:
            check_manifest(manifest, run.object_diagnostics, policy)
            run.facts.append(tree_facts(manifest))
    return run


def _check_runs(inputs: _Inputs, processes: int, policy: Policy) -> list[_Run]:
    """Check ``inputs`` in ``processes`` processes (this one and forked workers).

    The files are cut into many small runs, and each process takes the next run from a
    shared queue until none is left: a process that gets less CPU time (a shared or busy
    machine) simply checks fewer runs, instead of holding everyone up at the end. The
    queue is a pipe holding one byte per run, its number; a read of one byte takes one run.
    """
    runs = _split(inputs, min(len(inputs), processes * RUNS_PER_PROCESS, 256))
    queue, queue_writer = os.pipe()
    os.write(queue_writer, bytes(range(len(runs))))  # at most 256 bytes: never blocks
    os.close(queue_writer)
    pending: dict[int, int | None] = {}  # unreaped worker pid -> its pipe's read end
    try:
        workers: list[int] = []
        for _ in range(processes - 1):
            started = _fork(runs, queue, policy)
            if started is not None:
                pending[started[0]] = started[1]
                workers.append(started[0])
        results = _take_runs(runs, queue, policy)
        for pid in workers:
            results.update(_receive(pid, pending))
        # a run taken by a worker that failed is done again here
        return [
            results[index] if index in results else _check_run(run, policy)
            for index, run in enumerate(runs)
        ]
    finally:
        os.close(queue)
        # left early (an exception, ^C): stop and reap the workers still running
        for pid, pipe in pending.items():
            if pipe is not None:
                os.close(pipe)
            with contextlib.suppress(ProcessLookupError, ChildProcessError):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)


def _take_runs(runs: list[_Inputs], queue: int, policy: Policy) -> dict[int, _Run]:
    """Check runs taken from ``queue`` until it is empty: {run number: result}."""
    results: dict[int, _Run] = {}
    while taken := os.read(queue, 1):
        results[taken[0]] = _check_run(runs[taken[0]], policy)
    return results


def _take_runs_pickled(runs: list[_Inputs], queue: int, policy: Policy) -> list[bytes]:
    """``_take_runs`` in a worker: each result is pickled as soon as it is made, while the
    other processes are still busy, rather than all at the end while the parent waits."""
    return [
        pickle.dumps((taken[0], _check_run(runs[taken[0]], policy)), pickle.HIGHEST_PROTOCOL)
        for taken in iter(lambda: os.read(queue, 1), b"")
    ]


def _fork(runs: list[_Inputs], queue: int, policy: Policy) -> tuple[int, int] | None:
    """Start a worker that takes runs from ``queue``: its pid and the read end of the pipe
    it writes its pickled results to; None when no process can be started."""
    read_end, write_end = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        os.close(read_end)
        os.close(write_end)
        return None
    if pid == 0:  # pragma: no cover - the worker (coverage does not follow forks)
        status = 1
        try:
            os.close(read_end)
            payload = pickle.dumps(_take_runs_pickled(runs, queue, policy), pickle.HIGHEST_PROTOCOL)
            with open(write_end, "wb") as pipe:
                pipe.write(payload)
            status = 0
        finally:
            # no exit handlers, no flushing of buffers copied from the parent; on failure
            # the parent does the worker's runs again and reports what goes wrong
            os._exit(status)
    os.close(write_end)
    return pid, read_end


def _receive(pid: int, pending: dict[int, int | None]) -> dict[int, _Run]:
    """Read a worker's results and reap it (removing it from ``pending``); nothing when
    it failed: the runs it took are then done again here."""
    pipe = pending[pid]
    assert pipe is not None
    stream = open(pipe, "rb")  # noqa: SIM115 - closes the pipe; pending must know first
    pending[pid] = None
    with stream:
        payload = stream.read()
    _, status = os.waitpid(pid, 0)
    del pending[pid]
    if os.waitstatus_to_exitcode(status) != 0:
        return {}
    try:
        return dict(pickle.loads(part) for part in pickle.loads(payload))
    except Exception:  # a truncated payload: the worker was killed while writing
        return {}
