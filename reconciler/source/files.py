"""Reading a source: the files under the paths given, with every directory a jail.

Whoever can push to the repository chooses what is under the source directory, symbolic
links included, so reading it is where a hostile tree is stopped (issue 14): a committed
``ln -s /etc/shadow x.yaml`` must not be quoted into errors, logs and ``/status``, a link to
``/usr`` must not read thousands of files, one to ``/dev/zero`` must not be read without
end, a gigabyte file must not be read whole. So:

- a symbolic link is followed only when it stays inside the tree (or ``root``, a git
  checkout) and out of its hidden directories such as ``.git``; any other is an error at
  its path (``_Walker``);
- only regular files are read, each sized before it is read and read with a bound
  (``_read_file``);
- the tree as a whole holds at most ``SourceLimits`` files and bytes (``_Budget``).

Parsing the bytes read is ``source.load``'s.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.core.errors import InputError
from reconciler.core.model import Diagnostic, Location, Severity
from reconciler.core.text import shown as shown_text
from reconciler.source.ignore import SourceIgnore

#: Files larger than this are refused: a manifest this big is a mistake or an attack.
MAX_FILE_BYTES = 8 * 1024 * 1024

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
STDIN_NAME = "<stdin>"


def size_error(size: int) -> str:
    """The message of a file over :data:`MAX_FILE_BYTES`."""
    return (
        f"file is {size:,} bytes, over the {MAX_FILE_BYTES:,}-byte limit for one manifest "
        "file: split it"
    )


@dataclass(frozen=True, slots=True)
class SourceLimits:
    """How much one source may hold: a repository is input from whoever can push to it.

    Every file is sized before it is read (and read with a bound); past either cap the rest
    of the tree is not read and an error says so, as Argo CD caps directory applications.
    """

    max_files: int = 10_000
    max_bytes: int = 64 * 1024 * 1024


@dataclass
class SourceFiles:
    """What reading a source gave: (name, contents) pairs to parse, and the files refused
    (a symbolic link out of the tree, not a regular file, too large, past a cap) as errors
    with their file."""

    inputs: list[tuple[str, bytes]] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def refuse(self, name: str, message: str) -> None:
        self.refused.append(name)
        self.diagnostics.append(Diagnostic(Severity.ERROR, Location(name, 1, 1), message))


def discover(paths: Iterable[str], exclude: Sequence[str] = ()) -> list[str]:
    """The files ``load_paths`` reads under ``paths``, in order (``-`` is stdin).

    Directories are walked recursively, sorted, skipping dot-entries; inside them only
    ``.yaml``, ``.yml`` and ``.json`` files count, as with ``kubectl create -f DIR``. Files
    named explicitly are taken whatever their suffix. Raises InputError for a path that does
    not exist. ``.sourceignore`` files and the ``exclude`` patterns leave files out
    (``source.ignore``).
    """
    return [name for name, _ in _Walker(SourceFiles(), exclude=exclude).files(paths)]


class _Walker:
    """Finds the files of a source, with every directory given treated as a jail.

    A symbolic link inside a directory is followed only when what it points at is inside
    the same tree (or ``root``, a git checkout) and not in a hidden directory such as
    ``.git``; any other link is an error at its own path, never followed: a committed
    ``ln -s /etc/shadow x.yaml`` must not echo the host's files into errors, logs and
    ``/status``. Only regular files are read; a link loop is walked once.
    """

    def __init__(
        self, out: SourceFiles, root: str | None = None, exclude: Sequence[str] = ()
    ) -> None:
        self.out = out
        self.root = os.path.realpath(root) if root is not None else None
        self.exclude = tuple(exclude)

    def files(self, paths: Iterable[str]) -> list[tuple[str, str | None]]:
        """(name as shown, real path to open) per file, in order; ``-`` has no path."""
        found: list[tuple[str, str | None]] = []
        for raw in paths:
            if raw == "-":
                found.append((raw, None))
                continue
            path = Path(raw)
            if path.is_dir():
                jail = self.root or os.path.realpath(raw)
                ignore = SourceIgnore(raw, self.exclude)
                self._walk(raw, os.path.realpath(raw), jail, set(), found, ignore)
            elif path.is_file():
                found.append((raw, os.path.realpath(raw)))  # named by the operator: trusted
            elif path.exists():
                raise InputError(f"{raw}: not a regular file or directory")
            else:
                raise InputError(f"{raw}: no such file or directory")
        return found

    def _walk(
        self,
        shown_dir: str,
        real_dir: str,
        jail: str,
        seen: set[str],
        found: list[tuple[str, str | None]],
        ignore: SourceIgnore,
    ) -> None:
        if real_dir in seen:  # a link loop, or a directory linked twice
            return
        seen.add(real_dir)
        try:
            entries = sorted(os.scandir(real_dir), key=lambda e: e.name)
        except OSError as exc:
            raise InputError(f"{shown_dir}: {exc.strerror or exc}") from exc
        ignore.enter(shown_dir, real_dir, [e.name for e in entries])
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue
            shown = os.path.join(shown_dir, name)
            is_manifest = name.lower().endswith(MANIFEST_SUFFIXES)
            if entry.is_symlink():
                target = self._inside(shown, entry.path, jail)
                if target is None:
                    continue
                if os.path.isdir(target):
                    if not ignore.ignored(shown_dir, name, is_dir=True):
                        self._walk(shown, target, jail, seen, found, ignore)
                elif is_manifest and not ignore.ignored(shown_dir, name, is_dir=False):
                    found.append((shown, target))
            elif entry.is_dir(follow_symlinks=False):
                if not ignore.ignored(shown_dir, name, is_dir=True):
                    self._walk(shown, entry.path, jail, seen, found, ignore)
            elif is_manifest and not ignore.ignored(shown_dir, name, is_dir=False):
                found.append((shown, entry.path))  # a FIFO or device is refused when opened

    def _inside(self, shown: str, link: str, jail: str) -> str | None:
        """Where the link ``link`` leads when that is inside ``jail`` (and not hidden);
        None, with an error for the link, when it leads out, nowhere, or into ``.git``."""
        try:
            written = os.readlink(link)
        except OSError:
            written = "?"
        target = os.path.realpath(link)
        relative = os.path.relpath(target, jail)
        if relative == ".." or relative.startswith("../") or os.path.isabs(relative):
            self.out.refuse(
                shown,
                f"symbolic link to {shown_text(written)}, outside the source tree: not followed "
                "(links may only point inside the tree)",
            )
            return None
        if any(part.startswith(".") for part in Path(relative).parts if part != "."):
            self.out.refuse(
                shown,
                f"symbolic link to {shown_text(written)}, inside a hidden directory: not followed",
            )
            return None
        if not os.path.exists(target):
            self.out.refuse(shown, f"broken symbolic link to {shown_text(written)}: not read")
            return None
        return target


_FILE_TYPES = {
    stat.S_IFIFO: "a named pipe",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a directory",
}


class _Budget:
    """The files and bytes a source may still hold (``SourceLimits``)."""

    def __init__(self, limits: SourceLimits) -> None:
        self.limits = limits
        self.files = 0
        self.bytes = 0
        self.exceeded = ""

    def take(self, size: int) -> str:
        """Count one file of ``size`` bytes; why it may not be read, or ""."""
        if self.exceeded:
            return self.exceeded
        self.files += 1
        self.bytes += size
        if self.files > self.limits.max_files:
            self.exceeded = (
                f"the source holds more than {self.limits.max_files:,} manifest files "
                "(--max-source-files): this file and the rest are not read"
            )
        elif self.bytes > self.limits.max_bytes:
            self.exceeded = (
                f"the source holds more than {self.limits.max_bytes:,} bytes of manifests "
                "(--max-source-bytes): this file and the rest are not read"
            )
        return self.exceeded


def _read_file(path: str) -> tuple[bytes | None, str]:
    """A regular file's contents, sized before reading and read with a bound; or None and
    why not. ``O_NOFOLLOW``: a link swapped in after the walk is not followed; ``O_NONBLOCK``:
    a named pipe swapped in does not hang the open."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return None, "symbolic link: not followed"
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = _FILE_TYPES.get(stat.S_IFMT(info.st_mode), "not a regular file")
            return None, f"not a regular file ({kind}): not read"
        if info.st_size > MAX_FILE_BYTES:
            return None, size_error(info.st_size)
        chunks = [os.read(fd, info.st_size + 1)]  # + 1: sees a file that grew meanwhile
        size = len(chunks[0])
        while chunks[-1] and size <= MAX_FILE_BYTES:
            chunks.append(os.read(fd, MAX_FILE_BYTES + 1 - size))
            size += len(chunks[-1])
        if size > MAX_FILE_BYTES:
            return None, size_error(size)
        return b"".join(chunks), ""
    finally:
        os.close(fd)


def read_source(
    paths: Iterable[str],
    stdin: Any = None,
    *,
    limits: SourceLimits | None = None,
    root: str | None = None,
    exclude: Sequence[str] = (),
) -> SourceFiles:
    """Read every file under ``paths`` (``-`` is stdin), in order, within ``limits``.

    Reading is separate from parsing so that the parsing can be shared out among worker
    processes (``check.parallel``). ``root`` is the tree symbolic links must stay in (a git
    checkout); by default each directory given is its own. Raises InputError for a path
    that cannot be read at all; a file refused is an error in ``diagnostics``.
    """
    out = SourceFiles()
    budget = _Budget(limits or SourceLimits())
    for name, path in _Walker(out, root, exclude).files(paths):
        if path is None:
            stream = stdin if stdin is not None else sys.stdin.buffer
            data = stream.read(MAX_FILE_BYTES + 1)
            if len(data) > MAX_FILE_BYTES:
                out.refuse(STDIN_NAME, size_error(len(data)) + " (standard input)")
            else:
                out.inputs.append((STDIN_NAME, data))
            continue
        try:
            data_or_none, why = _read_file(path)
        except OSError as exc:
            raise InputError(f"{name}: {exc.strerror or exc}") from exc
        over = budget.take(len(data_or_none) if data_or_none is not None else 0)
        if over:
            out.refuse(name, over)
        elif data_or_none is None:
            out.refuse(name, why)
        else:
            out.inputs.append((name, data_or_none))
    return out
