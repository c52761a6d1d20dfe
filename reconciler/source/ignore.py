"""Which files under a source directory are not manifests: ``.sourceignore`` and ``--exclude``.

A manifests repository usually holds other YAML too (``docker-compose.yml``,
``kustomization.yaml``, CI files). As Flux does, a ``.sourceignore`` file in any directory of
the tree lists what to leave out, in ``.gitignore`` syntax: its patterns are relative to the
directory that holds it, a deeper file overrides a shallower one, ``!`` re-includes, and a
trailing ``/`` matches directories only. ``--exclude GLOB`` patterns (same syntax, relative
to each ``--source`` directory) rank above every file. An excluded directory is not entered.

The rules only apply to what a directory walk finds: a file named explicitly is read.
``pathspec`` is imported only when there are rules (``_spec``): a tree without any is
walked without it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from reconciler.core.model import Diagnostic, Location, Severity

if TYPE_CHECKING:
    import pathspec

IGNORE_FILE = ".sourceignore"
#: A longer ignore file is not read: it is input from whoever can push to the repository.
MAX_IGNORE_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class _Rules:
    """The patterns of one ``.sourceignore`` (or of ``--exclude``), and where they apply."""

    directory: str  # relative to the walk's root, "" for the root itself
    spec: pathspec.GitIgnoreSpec


def _spec(lines: Sequence[str]) -> pathspec.GitIgnoreSpec:
    """Patterns in ``.gitignore`` syntax, compiled (pathspec imported on the first)."""
    import pathspec

    return pathspec.GitIgnoreSpec.from_lines(list(lines))


def _relative(path: str, directory: str) -> str | None:
    """``path`` relative to ``directory`` (both relative to the root), or None when outside."""
    if not directory:
        return path
    prefix = directory + "/"
    return path[len(prefix) :] if path.startswith(prefix) else None


class SourceIgnore:
    """The ignore rules in force while walking one ``--source`` directory."""

    def __init__(self, root: str, exclude: Sequence[str] = ()) -> None:
        self.root = root
        self._files: list[_Rules] = []
        self._exclude = _Rules("", _spec(exclude)) if exclude else None

    def enter(self, shown_dir: str, real_dir: str, names: Sequence[str]) -> None:
        """Read the directory's ``.sourceignore``, if it has one, before its entries are
        judged: ``shown_dir`` is the directory as the walk names it, ``real_dir`` where it
        is. Only a regular file is read (never a link: the tree is untrusted input), and
        at most ``MAX_IGNORE_BYTES`` of it. Unreadable files are skipped: the walk reports
        what it can read."""
        if IGNORE_FILE not in names:
            return
        lines = _read_rules(os.path.join(real_dir, IGNORE_FILE))
        if lines is None:
            return
        directory = self._key(shown_dir)
        self._files.append(_Rules(directory, _spec(lines)))

    def ignored(self, dirpath: str, name: str, *, is_dir: bool) -> bool:
        """Whether the entry ``name`` of ``dirpath`` is left out."""
        path = "/".join(p for p in (self._key(dirpath), name) if p)
        if is_dir:
            path += "/"
        verdict: bool | None = None
        rules = [*self._files, self._exclude] if self._exclude else self._files
        for rule in rules:  # shallow to deep, then --exclude: the last that matches decides
            relative = _relative(path, rule.directory)
            if relative is None:
                continue
            result = rule.spec.check_file(relative)
            if result.include is not None:
                verdict = result.include
        return bool(verdict)

    def _key(self, dirpath: str) -> str:
        relative = os.path.relpath(dirpath, self.root)
        return "" if relative == "." else relative.replace(os.sep, "/")


def _read_rules(path: str) -> list[str] | None:
    """The lines of the ignore file at ``path``; None unless it is a readable regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as stream:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        data = stream.read(MAX_IGNORE_BYTES + 1)
    if len(data) > MAX_IGNORE_BYTES:
        return None
    try:
        return data.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        return None


def not_a_manifest(filename: str, position: tuple[int, int]) -> Diagnostic:
    """The error for a document with neither ``apiVersion`` nor ``kind``: some other tool's
    YAML (compose, CI, a chart's values). It names what to add to leave the file out."""
    base = os.path.basename(filename)
    hint = (
        f": if {base} is not meant for the reconciler, add the line '{base}' to a "
        f"{IGNORE_FILE} file (gitignore syntax) in its directory, or pass --exclude '{base}'"
        if filename != "<stdin>"
        else ""
    )
    return Diagnostic(
        Severity.ERROR,
        Location(filename, *position),
        f"not a Kubernetes object (no apiVersion, no kind){hint}",
    )
