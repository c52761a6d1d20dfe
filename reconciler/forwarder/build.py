"""The Service forwarder's program: shipped in the wheel, or compiled once and cached.

Why a C program: the forwarder runs in a container whose image the reconciler makes on
each host without a registry, from files on this machine (as it does for the pause image).
A static binary needs nothing else in that image, forwards TCP *and* UDP, and copies bytes
in one process with ``epoll`` instead of busybox ``nc``'s process pair per connection.

Where the program comes from, first found wins: ``RECONCILER_FORWARDER_BINARY`` (a static
build made elsewhere); the binary a wheel ships (its build hook compiled it, so a machine
without a C compiler serves Services); the cache; else it is compiled now with the local
compiler (a source install). The image tag is derived from the source and the compiler
flags (``program``), so a changed forwarder gets a new image and the forwarders are
recreated with it (their spec hash includes it).
"""

from __future__ import annotations

import os
import shlex
import threading
from functools import cache
from pathlib import Path

from reconciler.core.errors import ForwarderBuildError
from reconciler.desire.settings import FORWARDER_PATH
from reconciler.forwarder.program import (
    CFLAGS,
    SOURCE,
    CompileFailed,
    binary_name,
    compile_to,
    digest_of,
    find_compiler,
    prebuilt_path,
)

__all__ = ["CFLAGS", "SOURCE"]

BINARY_ENV = "RECONCILER_FORWARDER_BINARY"

_build_lock = threading.Lock()


@cache
def source_digest() -> str:
    """12 hex digits naming this forwarder: its source and how it is compiled."""
    return digest_of(SOURCE.read_bytes())


def origin() -> str:
    """Where ``forwarder_binary`` will take the program from, in a few words."""
    if os.environ.get(BINARY_ENV):
        return f"from {BINARY_ENV}"
    if prebuilt_path(source_digest()).is_file():
        return "prebuilt, shipped in the package"
    if (cache_dir() / binary_name(source_digest())).is_file():
        return f"compiled, cached in {cache_dir()}"
    return "to be compiled from source on first use: needs a C compiler"


def default_forwarder_image() -> str:
    return f"reconciler/forwarder:{source_digest()}"


def cache_dir() -> Path:
    """``RECONCILER_CACHE_DIR``, else ``$XDG_CACHE_HOME/reconciler``, else ~/.cache/reconciler."""
    explicit = os.environ.get("RECONCILER_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "reconciler"


def forwarder_binary() -> bytes:
    """The static forwarder: ``$RECONCILER_FORWARDER_BINARY``, the wheel's, the cache's, or
    a fresh build."""
    given = os.environ.get(BINARY_ENV)
    if given:
        try:
            return Path(given).read_bytes()
        except OSError as exc:
            raise ForwarderBuildError(f"{BINARY_ENV}={given}: {exc.strerror}") from None
    shipped = prebuilt_path(source_digest())
    if shipped.is_file():
        return shipped.read_bytes()
    target = cache_dir() / binary_name(source_digest())
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
    try:
        compile_to(compiler, target)
    except CompileFailed as exc:
        raise ForwarderBuildError(
            f"cannot build the Service forwarder with {shlex.join(compiler)} (a static "
            f"build needs libc6-dev):\n{exc}"
        ) from None
