"""``reconciler validate`` on every core: files are loaded and checked in worker processes.

Loading (libyaml's events composed into values with positions) and the checks of each
object take nearly all of the command's time, and every file is independent of the others.
So, when there is enough input, ``validate_paths`` reads every file here, forks one worker
per further CPU, gives each worker a contiguous run of files (split by size) and checks the
first run itself. A worker sends back its diagnostics and, for each object, only what the
checks across objects read (``validation.tree_view``), because pickling whole manifests
cost more than the second core saved. The parent puts the runs back in file order and runs
those checks (``validation.finish``), so that the diagnostics, their order, the counts and
the exit code are exactly those of ``validate(load_paths(...))``.

Small inputs, platforms without ``fork`` and processes that already run threads stay in
one process. A worker that fails or dies is not trusted: its run is done again here, so a
bug raises the same exception as it would in one process.
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

from reconciler.loading import parse_inputs, read_paths
from reconciler.model import Diagnostic, Manifest
from reconciler.validation import check_manifest, finish, tree_view

#: Less input than this is checked in one process: a fork, a pickle and a second
#: interpreter's page faults cost more than half of so little work.
MIN_PARALLEL_BYTES = 256 * 1024

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
    load_diagnostics: list[Diagnostic]
    object_diagnostics: list[Diagnostic]
    manifests: list[Manifest]  # whole manifests, or their tree views when sent by a worker


def validate_paths(
    paths: Iterable[str],
    stdin: Any = None,
    *,
    workers: int | None = None,
    min_bytes: int = MIN_PARALLEL_BYTES,
) -> Validated:
    """Load and validate every file under ``paths`` (``-`` is stdin), using every core.

    ``workers`` is the number of processes, this one included (default: the CPUs this
    process may run on); input smaller than ``min_bytes`` is checked in this process.
    Raises InputError, before any checking, for a path that cannot be read.
    """
    inputs = read_paths(paths, stdin)
    count = _process_count(inputs, _cpus() if workers is None else workers, min_bytes)
    # The composer keeps every container it makes, so the collector's passes over the
    # older generations walk an ever larger heap without finding any garbage: about a
    # quarter of the loading time. Nothing here makes reference cycles worth collecting.
    collecting = gc.isenabled()
    gc.disable()
    try:
        runs = _check_runs(_split(inputs, count)) if count > 1 else [_check_run(inputs)]
        diagnostics = [d for run in runs for d in run.load_diagnostics]
        for run in runs:
            diagnostics.extend(run.object_diagnostics)
        manifests = [manifest for run in runs for manifest in run.manifests]
        return Validated(
            files=[name for run in runs for name in run.files],
            objects=len(manifests),
            diagnostics=finish(diagnostics, manifests),
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


def _check_run(inputs: _Inputs, views: bool = False) -> _Run:
    """Parse ``inputs`` and run every single-object check (the work a worker does)."""
    loaded = parse_inputs(inputs)
    checked: list[Diagnostic] = []
    for manifest in loaded.manifests:
        check_manifest(manifest, checked)
    manifests = [tree_view(m) for m in loaded.manifests] if views else loaded.manifests
    return _Run(loaded.files, loaded.diagnostics, checked, manifests)


def _check_runs(runs: list[_Inputs]) -> list[_Run]:
    """The first run here, each other one in a forked worker; results in run order."""
    pending: dict[int, int | None] = {}  # unreaped worker pid -> its pipe's read end
    try:
        workers: list[int | None] = []
        for run in runs[1:]:
            started = _fork(run)
            if started is not None:
                pending[started[0]] = started[1]
            workers.append(None if started is None else started[0])
        results = [_check_run(runs[0])]
        for pid, run in zip(workers, runs[1:], strict=True):
            result = None if pid is None else _receive(pid, pending)
            results.append(result if result is not None else _check_run(run))
        return results
    finally:  # left early (an exception, ^C): stop and reap the workers still running
        for pid, pipe in pending.items():
            if pipe is not None:
                os.close(pipe)
            with contextlib.suppress(ProcessLookupError, ChildProcessError):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)


def _fork(run: _Inputs) -> tuple[int, int] | None:
    """Start a worker for ``run``: its pid and the read end of the pipe it writes its
    pickled _Run to; None when no process can be started (the run is then done here)."""
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
            payload = pickle.dumps(_check_run(run, views=True), pickle.HIGHEST_PROTOCOL)
            with open(write_end, "wb") as pipe:
                pipe.write(payload)
            status = 0
        finally:
            # no exit handlers, no flushing of buffers copied from the parent; on failure
            # the parent does this run again and reports what goes wrong
            os._exit(status)
    os.close(write_end)
    return pid, read_end


def _receive(pid: int, pending: dict[int, int | None]) -> _Run | None:
    """Read a worker's result and reap it (removing it from ``pending``); None when it
    failed, and then its run is done again here."""
    pipe = pending[pid]
    assert pipe is not None
    stream = open(pipe, "rb")  # noqa: SIM115 - closes the pipe; pending must know first
    pending[pid] = None
    with stream:
        payload = stream.read()
    _, status = os.waitpid(pid, 0)
    del pending[pid]
    if os.waitstatus_to_exitcode(status) != 0:
        return None
    try:
        result = pickle.loads(payload)
    except Exception:  # a truncated payload: the worker was killed while writing
        return None
    return result if isinstance(result, _Run) else None
