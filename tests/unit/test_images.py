"""The registry-free busybox image: static ELF detection and the root filesystem tar."""

from __future__ import annotations

import io
import os
import struct
import tarfile
from pathlib import Path

import pytest

from reconciler.core.errors import ImageSourceError
from reconciler.engine.images import (
    APPLETS,
    BUSYBOX_CANDIDATES,
    PAUSE_COMMAND,
    busybox_rootfs,
    find_static_busybox,
    is_static_elf,
)

BUSYBOX = Path("/bin/busybox")
needs_busybox = pytest.mark.skipif(
    not BUSYBOX.exists() or not Path("/bin/ls").exists(),
    reason="needs Debian's busybox-static at /bin/busybox and a dynamic /bin/ls",
)


def elf64(*program_header_types: int, endian: str = "<") -> bytes:
    """A minimal 64-bit ELF header followed by program headers of the given types."""
    phoff, phentsize = 64, 56
    header = bytearray(64)
    header[:4] = b"\x7fELF"
    header[4] = 2  # 64-bit
    header[5] = 1 if endian == "<" else 2
    struct.pack_into(endian + "Q", header, 0x20, phoff)
    struct.pack_into(endian + "HH", header, 0x36, phentsize, len(program_header_types))
    body = bytearray()
    for p_type in program_header_types:
        entry = bytearray(phentsize)
        struct.pack_into(endian + "I", entry, 0, p_type)
        body += entry
    return bytes(header + body)


# -- static ELF detection -------------------------------------------------------------------
@needs_busybox
def test_busybox_here_is_static() -> None:
    assert is_static_elf(BUSYBOX.read_bytes())


@needs_busybox
def test_ls_here_is_dynamic() -> None:
    assert not is_static_elf(Path("/bin/ls").read_bytes())


@pytest.mark.parametrize("endian", ["<", ">"])
def test_program_interpreter_means_dynamic(endian: str) -> None:
    assert is_static_elf(elf64(1, 1, 4, endian=endian))  # LOAD, LOAD, NOTE
    assert not is_static_elf(elf64(6, 3, 1, endian=endian))  # PHDR, INTERP, LOAD


def test_not_elf_or_not_64_bit() -> None:
    assert not is_static_elf(b"#!/bin/sh\necho hi\n" + bytes(64))
    thirty_two = bytearray(elf64(1))
    thirty_two[4] = 1
    assert not is_static_elf(bytes(thirty_two))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x7fELF",
        b"\x7fELF\x02",
        elf64(1)[:40],  # cut inside the header
        elf64(1, 3)[:100],  # cut inside the program headers
    ],
    ids=["empty", "magic", "class", "header", "program-headers"],
)
def test_truncated_files_are_not_static_executables(data: bytes) -> None:
    assert not is_static_elf(data)


no_override = pytest.mark.skipif(
    bool(os.environ.get("RECONCILER_BUSYBOX")), reason="RECONCILER_BUSYBOX is looked at first"
)


@no_override
def test_find_static_busybox_skips_missing_truncated_and_dynamic_candidates(
    tmp_path: Path,
) -> None:
    dynamic = tmp_path / "dynamic"
    dynamic.write_bytes(elf64(3, 1))
    truncated = tmp_path / "truncated"
    truncated.write_bytes(elf64(1)[:30])
    static = tmp_path / "static"
    static.write_bytes(elf64(1))
    candidates = [str(tmp_path / "missing"), str(truncated), str(dynamic), str(static)]
    assert find_static_busybox(candidates) == static.read_bytes()


@no_override
def test_find_static_busybox_explains_what_it_looked_at(tmp_path: Path) -> None:
    dynamic = tmp_path / "dynamic"
    dynamic.write_bytes(elf64(3))
    with pytest.raises(ImageSourceError, match="no statically linked busybox found") as info:
        find_static_busybox([str(dynamic)])
    assert str(dynamic) in str(info.value)
    assert "busybox-static" in str(info.value)


def test_default_candidates() -> None:
    assert "/bin/busybox" in BUSYBOX_CANDIDATES


# -- the root filesystem --------------------------------------------------------------------
def members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_rootfs_has_busybox_and_applet_symlinks() -> None:
    payload = elf64(1) + b"busybox bytes"
    data = busybox_rootfs(payload)
    found = members(data)
    binary = found["bin/busybox"]
    assert binary.isfile()
    assert binary.mode == 0o755
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        extracted = tar.extractfile("bin/busybox")
        assert extracted is not None
        assert extracted.read() == payload
    for applet in APPLETS:
        link = found[f"bin/{applet}"]
        assert link.issym(), applet
        assert link.linkname == "busybox"
    for applet in ("sh", "sleep", "httpd", "nc", "wget", "hostname"):
        assert f"bin/{applet}" in found


def test_rootfs_has_the_pause_command_and_writable_directories() -> None:
    found = members(busybox_rootfs(b"x"))
    assert PAUSE_COMMAND[0].lstrip("/") in found  # /bin/sleep
    assert found["tmp"].isdir() and found["tmp"].mode == 0o1777
    for directory in ("bin", "etc", "www", "var", "root"):
        assert found[directory].isdir()
    assert found["etc/passwd"].isfile()
    assert found["etc/group"].isfile()


def test_rootfs_is_deterministic() -> None:
    assert busybox_rootfs(b"same") == busybox_rootfs(b"same")
    assert busybox_rootfs(b"same") != busybox_rootfs(b"other")


@needs_busybox
def test_rootfs_from_the_real_busybox() -> None:
    data = busybox_rootfs(find_static_busybox([str(BUSYBOX)]))
    found = members(data)
    assert found["bin/busybox"].size == BUSYBOX.stat().st_size
