"""docs/tutorial.md runs: its ``sh`` blocks, in order, as one bash script.

The page uses the test hosts' addresses (10.231.0.11 and .12, plain tcp on 2375), so the
session's hosts serve it as they are. Only what would collide with other runs is changed, by
plain text replacement, and each replaced text must be on the page: the instance name, the
NodePort and the service's listening port. The cluster subnet comes from the environment.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import REPO, Rig, free_node_port, free_port, purge
from .testhosts import TestHosts, test_hosts

__all__ = ["test_hosts"]  # the fixture is imported to be found, not called

pytestmark = pytest.mark.slow

TUTORIAL = REPO / "docs" / "tutorial.md"
BLOCK = re.compile(r"^```sh\n(.*?)^```$", re.M | re.S)


def script_of(text: str, replacements: dict[str, str]) -> str:
    blocks = BLOCK.findall(text)
    assert len(blocks) >= 8, "the tutorial lost its commands"
    script = "\n".join(blocks)
    for old, new in replacements.items():
        assert old in script, f"the tutorial no longer says {old!r}: update this test"
        script = script.replace(old, new)
    return script


def test_the_tutorial_runs_from_nothing_to_a_reverted_commit(
    test_hosts: TestHosts, make_rig: Callable[[], Rig], tmp_path: Path
) -> None:
    assert [h["address"] for h in test_hosts.hosts[:2]] == ["10.231.0.11", "10.231.0.12"]
    rig = make_rig()  # an instance name and a subnet of its own, purged at the end
    node_port, listen = free_node_port(), free_port()
    script = script_of(
        TUTORIAL.read_text(),
        {
            "RECONCILER_INSTANCE=tutorial": f"RECONCILER_INSTANCE={rig.instance}",
            "30088": str(node_port),
            "127.0.0.1:9479": f"127.0.0.1:{listen}",
        },
    )
    work = tmp_path / "tutorial"
    work.mkdir()
    (work / "tutorial.sh").write_text(script)
    env = {
        **rig.process_env,
        "PATH": f"{REPO / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "GIT_CONFIG_NOSYSTEM": "1",
        "HOME": str(tmp_path),  # no global git config of the machine's user
    }
    try:
        completed = subprocess.run(
            ["bash", "-euo", "pipefail", "tutorial.sh"],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        log = (work / "run.log").read_text() if (work / "run.log").exists() else ""
        report = (
            f"{completed.stdout[-6000:]}\n--- stderr\n{completed.stderr[-4000:]}\n"
            f"--- run.log\n{log[-4000:]}"
        )
        assert completed.returncode == 0, report
        out = completed.stdout
        # two replicas, one per host, both answering through the Service on both hosts
        assert len(set(re.findall(r"^hello from (web-\d)$", out, re.M))) >= 1, report
        # the scale-up: DESIRED 3; the typo held back with its file and line; the revert in sync
        assert re.search(r"^web\s+3\s+3", out, re.M), report
        assert "web/app.yaml:" in out and "replicas" in out, report
        assert out.count("Running") >= 2 + 3, report
    finally:
        pid_file = work / "run.pid"
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid_file.read_text().strip()), signal.SIGKILL)
        for name in test_hosts.names:
            with contextlib.suppress(Exception):
                api = test_hosts.api(name)
                purge(api, rig.instance)
                api.close()
