"""``deploy/reconciler.service``: a unit systemd accepts, with the hardening it promises.

``systemd-analyze verify`` checks the unit offline. It also insists that the ``ExecStart``
program exists, so it runs with ``--root`` on a small tree laid out as an install is (the
unit in ``/etc/systemd/system``, the venv's ``/opt/reconciler/bin/reconciler``, systemd's
own units copied in): on a machine where the reconciler is installed that way, the plain
``systemd-analyze verify deploy/reconciler.service`` says the same.
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "deploy" / "reconciler.service"
SYSTEM_UNITS = Path("/usr/lib/systemd/system")


def directives() -> dict[str, dict[str, str]]:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    return {section: dict(parser[section]) for section in parser.sections()}


def test_the_unit_is_hardened_keeps_state_and_restarts() -> None:
    service = directives()["Service"]
    assert service["ExecStart"].split()[1:] == [
        "run", "--config", "/etc/reconciler/config.yaml"
    ]  # fmt: skip
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["StateDirectory"] == "reconciler"
    assert service["Restart"] == "on-failure"
    assert service["DynamicUser"] == "yes"  # never root
    assert "RECONCILER_STATE_DIR=%S/reconciler" in service["Environment"]
    assert directives()["Install"]["WantedBy"] == "multi-user.target"


def test_systemd_analyze_verify_is_clean(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None or not SYSTEM_UNITS.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail("systemd-analyze is missing (Debian: apt-get install systemd)")
        pytest.skip("systemd-analyze is not installed")
    program = Path(directives()["Service"]["ExecStart"].split()[0])
    installed = tmp_path / program.relative_to("/")
    installed.parent.mkdir(parents=True)
    installed.write_text("#!/bin/sh\n")
    installed.chmod(0o755)
    (tmp_path / "usr/lib/systemd").mkdir(parents=True)
    shutil.copytree(SYSTEM_UNITS, tmp_path / "usr/lib/systemd/system", symlinks=True)
    (tmp_path / "etc/systemd/system").mkdir(parents=True)
    shutil.copy(UNIT, tmp_path / "etc/systemd/system" / UNIT.name)
    result = subprocess.run(
        [analyze, "verify", f"--root={tmp_path}", UNIT.name],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
