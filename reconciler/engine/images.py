"""A registry-free image: a root filesystem holding only a static busybox. Pure.

Hosts here cannot pull, so the infra ("pause") image — and, for the sample repository,
application stand-ins — are imported from a tarball built in memory from the machine's
static busybox (Debian's ``busybox-static``). Importing takes ~0.1 s and needs no build
tooling on the Docker host, which may be remote.
"""

from __future__ import annotations

import io
import os
import struct
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from reconciler.core.errors import ImageSourceError

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
APPLETS = (
    "sh",
    "sleep",
    "httpd",
    "nc",
    "wget",
    "hostname",
    "echo",
    "mkdir",
    "cat",
    "ls",
    "env",
    "ip",
    "nslookup",
    "timeout",
    "ps",
    "kill",
    "true",
    "false",
    "test",
    "[",
    "printf",
    "grep",
    "sed",
    "head",
    "tail",
    "date",
    "id",
    "touch",
    "rm",
    "cp",
    "mv",
    "ln",
    "chmod",
    "uname",
    "netstat",
    "ping",
    "seq",
    "wc",
    "cut",
    "tr",
    "sort",
    "uniq",
    "xargs",
    "tee",
    "dd",
    "df",
    "free",
    "top",
    "vi",
    "awk",
    "expr",
    "basename",
    "dirname",
    "readlink",
    "stat",
    "find",
    "init",
    "yes",
    "telnet",
    "hexdump",
    "md5sum",
    "sha256sum",
    "base64",
    "which",
)
PAUSE_COMMAND = ("/bin/sleep", "2147483647")


def is_static_elf(data: bytes) -> bool:
    """True for an ELF executable with no program interpreter (statically linked)."""
    if len(data) < 64 or data[:4] != b"\x7fELF" or data[4] != 2:  # 64-bit only
        return False
    endian = "<" if data[5] == 1 else ">"
    phoff = struct.unpack_from(endian + "Q", data, 0x20)[0]
    phentsize, phnum = struct.unpack_from(endian + "HH", data, 0x36)
    try:
        for index in range(phnum):
            (p_type,) = struct.unpack_from(endian + "I", data, phoff + index * phentsize)
            if p_type == 3:  # PT_INTERP
                return False
    except struct.error:  # truncated: not a usable executable
        return False
    return True


def find_static_busybox(candidates: Sequence[str] = BUSYBOX_CANDIDATES) -> bytes:
    """The bytes of a statically linked busybox (``RECONCILER_BUSYBOX`` first)."""
    paths = [os.environ["RECONCILER_BUSYBOX"]] if os.environ.get("RECONCILER_BUSYBOX") else []
    for path in [*paths, *candidates]:
        try:
            data = Path(path).read_bytes()
        except OSError:
            continue
        if is_static_elf(data):
            return data
    raise ImageSourceError(
        "no statically linked busybox found (looked at "
        + ", ".join([*paths, *candidates])
        + "): install Debian's busybox-static, set RECONCILER_BUSYBOX, or load an image "
        "with that name onto the host yourself"
    )


def busybox_rootfs(busybox: bytes, programs: Mapping[str, bytes] | None = None) -> bytes:
    """A tar of /bin/busybox, its applets as symlinks, and writable /tmp, /www, /etc.

    ``programs`` adds executables by path (the Service forwarder at /bin/forwarder).
    """
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for directory, mode in (
            ("bin", 0o755),
            ("etc", 0o755),
            ("tmp", 0o1777),
            ("www", 0o755),
            ("var", 0o755),
            ("root", 0o700),
        ):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, mode
            tar.addfile(info)
        info = tarfile.TarInfo("bin/busybox")
        info.size, info.mode = len(busybox), 0o755
        tar.addfile(info, io.BytesIO(busybox))
        for applet in APPLETS:
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
        for path, program in (programs or {}).items():
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode = len(program), 0o755
            tar.addfile(info, io.BytesIO(program))
        for name, text in (
            ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
            ("etc/group", "root:x:0:\n"),
        ):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def probe_tools_rootfs(busybox: bytes, mount: str) -> bytes:
    """The probe tools image's files: ``busybox`` at ``MOUNT/busybox`` and nothing else.
    Mounted at ``mount``, a volume made from it gives every checked container the busybox
    its health check runs (``engine.probes``), whatever the container's own image holds."""
    directory = mount.strip("/")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(directory)
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(info)
        info = tarfile.TarInfo(f"{directory}/busybox")
        info.size, info.mode = len(busybox), 0o755
        tar.addfile(info, io.BytesIO(busybox))
    return buffer.getvalue()
