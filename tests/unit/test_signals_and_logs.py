"""Two last ways a hostile input reached the operator: forged log lines, and a service that
stops answering SIGTERM.

- Log lines (text and JSON) and ``validate``'s output are one line each, whatever a name,
  kind or file name holds (``daemon.logs``, ``render.diagnostics``).
- The SIGTERM handler only sets a flag (``daemon.signals``): a thread of its own stops the
  loop; a second signal ends the process at once. Processes of their own, for the signals.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli import cli
from reconciler.daemon.config import RunConfig
from reconciler.daemon.logs import setup_logging
from reconciler.daemon.loop import ReconcileService
from reconciler.daemon.signals import StopSignals
from reconciler.desire.settings import Settings
from reconciler.source.hosts import Host

from .memory_runtime import MemoryHost

FORGED = "INFO pass done: revision 0000000, 0 applied, 0 failed"
#: A name holding a line break and a terminal escape (valid YAML: a double-quoted escape).
HOSTILE = f"""\
apiVersion: v1
kind: Pod
metadata:
  name: "web\\n{FORGED}\\u001b[2J"
spec:
  containers: [{{name: app, image: "web:1"}}]
"""


@pytest.fixture
def captured() -> object:
    """setup_logging's handler, writing into a buffer instead of stderr."""
    root = logging.getLogger("reconciler")
    saved = root.handlers[:], root.level, root.propagate
    buffer = io.StringIO()
    yield buffer
    root.handlers[:], root.level, root.propagate = saved
    del buffer


def run_service_logging(fmt: str, source: Path, buffer: io.StringIO) -> None:
    setup_logging(fmt)
    handler = logging.getLogger("reconciler").handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(buffer)
    host = MemoryHost("h1", instance="svc", images=("web:1",))
    config = RunConfig(
        source=str(source),
        hosts=[Host("h1", "tcp://10.231.0.11:2375", "10.231.0.11")],
        instance="svc",
        settings=Settings(instance="svc"),
    )
    ReconcileService(config, runtimes={"h1": host}).run_pass("test")


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_name_holding_a_line_break_cannot_forge_a_log_line(
    fmt: str, tmp_path: Path, captured: io.StringIO
) -> None:
    source = tmp_path / "manifests"
    source.mkdir()
    (source / "pod.yaml").write_text(HOSTILE)
    run_service_logging(fmt, source, captured)
    lines = captured.getvalue().splitlines()
    messages = [json.loads(line)["message"] for line in lines] if fmt == "json" else lines
    assert any("web\\nINFO pass done" in message for message in messages), lines
    for line in lines:
        if fmt == "json":
            entry = json.loads(line)
            assert "\n" not in entry["message"] and "\x1b" not in entry["message"]
        else:
            assert line[:4].isdigit(), f"a line that is not a record: {line!r}"
        assert not line.startswith("INFO pass done")
        assert "\x1b" not in line


def test_validate_prints_one_line_per_diagnostic_whatever_the_file_is_called(
    tmp_path: Path,
) -> None:
    path = tmp_path / f"evil\n{FORGED}.yaml"
    path.write_text(HOSTILE)
    done = CliRunner().invoke(cli, ["validate", str(path)])
    lines = done.output.splitlines()
    assert len(lines) == 2  # one error (the name), the summary
    assert lines[0].startswith(str(tmp_path) + "/evil\\nINFO pass done")
    assert "metadata.name" in lines[0] and "\x1b" not in lines[0]


# -- signals ---------------------------------------------------------------------------------
def test_the_handler_only_sets_a_flag() -> None:
    stops: list[bool] = []
    signals = StopSignals(lambda: stops.append(True), stop_timeout=60)
    before = signal.getsignal(signal.SIGTERM)
    records: list[logging.LogRecord] = []
    catcher = logging.Handler()
    catcher.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("reconciler").addHandler(catcher)
    try:
        assert signals.install()
        handler = signal.getsignal(signal.SIGTERM)
        assert callable(handler)
        handler(signal.SIGTERM, None)  # as the interpreter would call it
        assert signals.last == signal.SIGTERM
        # nothing else happened on the signal path: no log line, no stop, no disposition
        assert stops == [] and records == []
        assert signal.getsignal(signal.SIGTERM) is handler
    finally:
        signals.close()
        logging.getLogger("reconciler").removeHandler(catcher)
    assert signal.getsignal(signal.SIGTERM) == before


_STUCK = """\
import sys, time
from reconciler.daemon.signals import StopSignals
signals = StopSignals(lambda: print("stopping", flush=True), stop_timeout=600)
signals.install()
print("ready", flush=True)
while True:  # a pass that does not end (a slow host, a long apply)
    time.sleep(0.01)
"""


def _start(tmp_path: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _STUCK],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    return proc


def test_the_first_signal_stops_the_loop_and_a_second_ends_the_process(tmp_path: Path) -> None:
    proc = _start(tmp_path)
    try:
        assert proc.stdout is not None
        proc.send_signal(signal.SIGTERM)
        assert proc.stdout.readline() == "stopping\n"  # asked, off the signal path
        time.sleep(0.2)
        assert proc.poll() is None  # the pass goes on
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 128 + signal.SIGTERM
    finally:
        proc.kill()
        proc.wait(10)


def test_a_burst_of_signals_ends_the_process(tmp_path: Path) -> None:
    """A burst never leaves the handler deaf. The kernel merges a signal sent while the same
    one is still pending, so a burst may arrive as one delivery (a stop, not an exit): the
    signal after it must still be heard."""
    proc = _start(tmp_path)
    try:
        for _ in range(50):
            proc.send_signal(signal.SIGTERM)
        assert proc.stdout is not None
        assert proc.stdout.readline() == "stopping\n"  # the burst was heard, at least once
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)  # a later one is heard too (if still needed)
        assert proc.wait(10) == 128 + signal.SIGTERM
    finally:
        proc.kill()
        proc.wait(10)
