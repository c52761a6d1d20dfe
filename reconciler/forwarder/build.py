"""The Service forwarder's program: compiled once from the packaged C source, then cached.

Why a C program: the forwarder runs in a container whose image the reconciler makes on
each host without a registry, from files on this machine (as it does for the pause image).
A static binary needs nothing else in that image, forwards TCP *and* UDP, and copies bytes
in one process with ``epoll`` instead of busybox ``nc``'s process pair per connection.

The image tag is derived from the source and the compiler flags, so a changed forwarder
gets a new image and the forwarders are recreated with it (their spec hash includes it).
``RECONCILER_FORWARDER_BINARY`` points at a prebuilt static binary for machines without a
C compiler.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import tempfile
import threading
from functools import cache
from pathlib import Path

from reconciler.core.errors import ForwarderBuildError
from reconciler.desire.settings import FORWARDER_PATH

SOURCE = Path(__file__).parent / "forwarder.c"
CFLAGS = ("-static", "-O2", "-std=gnu11", "-Wall", "-Wextra", "-Werror")
BINARY_ENV = "RECONCILER_FORWARDER_BINARY"
COMPILE_TIMEOUT = 180.0

_build_lock = threading.Lock()


@cache
def source_digest() -> str:
    """12 hex digits naming this forwarder: its source and how it is compiled."""
    digest = hashlib.sha256(SOURCE.read_bytes())
    digest.update(" ".join(CFLAGS).encode())
    return digest.hexdigest()[:12]


def default_forwarder_image() -> str:
    return f"reconciler/forwarder:{source_digest()}"


def cache_dir() -> Path:
    """``RECONCILER_CACHE_DIR``, else ``$XDG_CACHE_HOME/reconciler``, else ~/.cache/reconciler."""
    explicit = os.environ.get("RECONCILER_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "reconciler"


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


def forwarder_binary() -> bytes:
    """The static forwarder: ``$RECONCILER_FORWARDER_BINARY``, the cache, or a fresh build."""
    prebuilt = os.environ.get(BINARY_ENV)
    if prebuilt:
        try:
            return Path(prebuilt).read_bytes()
        except OSError as exc:
            raise ForwarderBuildError(f"{BINARY_ENV}={prebuilt}: {exc.strerror}") from None
    target = cache_dir() / f"forwarder-{source_digest()}"
    with _build_lock:
        if not target.is_file():
            _compile(target)
        return target.read_bytes()


def forwarder_programs() -> dict[str, bytes]:
    """What the forwarder image holds besides busybox: the program, at the path the desired
    forwarder pods run (``engine`` builds the image from this, without knowing how it is
    made)."""
    return {FORWARDER_PATH: forwarder_binary()}


def _compile(target: Path) -> None:
    compiler = find_compiler()
    if compiler is None:
        given = os.environ.get("CC")
        wanted = f"CC={given} is not on PATH" if given else "no C compiler"
        raise ForwarderBuildError(
            f"cannot build the Service forwarder: {wanted} (install gcc and libc6-dev, set "
            f"CC, or set {BINARY_ENV} to a static build of {SOURCE})"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        output = Path(scratch) / "forwarder"
        try:
            result = subprocess.run(
                [*compiler, *CFLAGS, "-o", str(output), str(SOURCE)],
                capture_output=True,
                text=True,
                timeout=COMPILE_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ForwarderBuildError(f"cannot build the Service forwarder: {exc}") from None
        if result.returncode != 0:
            tail = "\n".join(result.stderr.strip().splitlines()[-8:])
            raise ForwarderBuildError(
                f"cannot build the Service forwarder with {shlex.join(compiler)} (a static "
                f"build needs libc6-dev):\n{tail}"
            )
        os.replace(output, target)  # atomic: concurrent processes never see half a file
