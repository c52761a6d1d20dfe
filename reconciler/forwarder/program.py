"""The forwarder program's identity and its compilation: the C source, the flags, the digest.

Standard library only, and no import of the package: the wheel's build hook
(``hatch_build.py``) loads this file by its path to compile the forwarder that the wheel
ships, in a build environment where the package's dependencies are not installed. So the
wheel's binary and a binary compiled on first use (``build``) come from one definition
and carry one digest.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

SOURCE = Path(__file__).parent / "forwarder.c"
CFLAGS = ("-static", "-O2", "-std=gnu11", "-Wall", "-Wextra", "-Werror")
COMPILE_TIMEOUT = 180.0
#: Where a wheel keeps the forwarder its build hook compiled, as ``forwarder-<digest>``.
PREBUILT_DIR = Path(__file__).parent / "prebuilt"


class CompileFailed(Exception):
    """The compiler could not be run or refused the source; the message says which."""


def digest_of(source: bytes) -> str:
    """12 hex digits naming a forwarder: its source and how it is compiled."""
    digest = hashlib.sha256(source)
    digest.update(" ".join(CFLAGS).encode())
    return digest.hexdigest()[:12]


def binary_name(digest: str) -> str:
    """The file name of a compiled forwarder, in the cache and in a wheel."""
    return f"forwarder-{digest}"


def prebuilt_path(digest: str) -> Path:
    return PREBUILT_DIR / binary_name(digest)


def compile_to(compiler: list[str], target: Path, source: Path = SOURCE) -> None:
    """Compile ``source`` statically into ``target``, atomically (a concurrent reader never
    sees half a file). Raises ``CompileFailed`` with the compiler's last lines."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        output = Path(scratch) / "forwarder"
        try:
            result = subprocess.run(
                [*compiler, *CFLAGS, "-o", str(output), str(source)],
                capture_output=True,
                text=True,
                timeout=COMPILE_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise CompileFailed(str(exc)) from None
        if result.returncode != 0:
            tail = "\n".join(result.stderr.strip().splitlines()[-8:])
            raise CompileFailed(tail or f"exit {result.returncode}")
        os.replace(output, target)


def find_compiler() -> list[str] | None:
    """The compiler's command: ``$CC`` (which may carry arguments, as ``ccache gcc``), else
    the first of cc, gcc and clang on PATH."""
    explicit = shlex.split(os.environ.get("CC", ""))
    if explicit:
        found = shutil.which(explicit[0])
        return [found, *explicit[1:]] if found else None
    for candidate in ("cc", "gcc", "clang"):
        found = shutil.which(candidate)
        if found:
            return [found]
    return None
