"""Building and installing the reconciler as its users do: a wheel, a fresh venv, pip.

Shared by the wheel test, the image test and the upgrade test. Dependencies come from
PyPI through pip (its cache makes a second run quick); nothing here touches the project's
own ``.venv`` except to run pip.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PIP_TIMEOUT = 900


@dataclass
class Timed:
    path: Path
    seconds: float


def run(
    command: list[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = PIP_TIMEOUT,
) -> str:
    """Run a command; on failure the assertion carries its output."""
    completed = subprocess.run(
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert completed.returncode == 0, (
        f"{' '.join(command)} exited {completed.returncode}:\n"
        f"{completed.stdout[-3000:]}{completed.stderr[-3000:]}"
    )
    return completed.stdout


def pip_env() -> dict[str, str]:
    """pip quiet and non-interactive; the project's venv's tools first on PATH."""
    return {
        **os.environ,
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_INPUT": "1",
    }


def build_wheel(source: Path, dest: Path, **env: str) -> Timed:
    """``pip wheel`` of the project at ``source`` (its build hook runs), into ``dest``."""
    started = time.monotonic()
    dest.mkdir(parents=True, exist_ok=True)
    run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dest), str(source)],
        env={**pip_env(), **env},
    )
    [wheel] = sorted(dest.glob("reconciler-*.whl"))
    return Timed(wheel, time.monotonic() - started)


def fresh_venv(path: Path, *requirements: str) -> Timed:
    """A new venv at ``path`` with ``requirements`` pip-installed (and their dependencies)."""
    started = time.monotonic()
    run([sys.executable, "-m", "venv", str(path)])
    if requirements:
        run([str(path / "bin" / "pip"), "install", "-q", *requirements], env=pip_env())
    return Timed(path, time.monotonic() - started)
