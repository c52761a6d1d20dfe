"""``revision_of``: which commit a local source directory is checked out at.

The reconciler labels what it applies with this, so that a container can be traced back to
the commit it came from, whether the directory is a clone ``sync`` made or a developer's
own work tree (``+dirty`` then says the files are not exactly that commit).

A path in no repository at all (a plain directory of manifests) is told apart first, by
looking for ``.git`` up the tree as GitPython would, so that it costs no GitPython import.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import git


def in_repository(path: str) -> bool:
    """Whether ``path`` may be inside a git repository: it, or a directory above it, holds
    ``.git`` or is a git directory itself (``HEAD``, ``objects``, ``refs``: a bare
    repository). False means GitPython would find none either, without asking it."""
    current = os.path.abspath(os.path.expanduser(path))
    while True:
        if os.path.lexists(os.path.join(current, ".git")) or _is_git_dir(current):
            return True
        parent = os.path.dirname(current)
        if parent == current:
            return False
        current = parent


def _is_git_dir(path: str) -> bool:
    return os.path.lexists(os.path.join(path, "HEAD")) and all(
        os.path.isdir(os.path.join(path, part)) for part in ("objects", "refs")
    )


def _open_repository(path: str) -> git.Repo | None:
    """The repository ``path`` is in (the caller closes it), or None; GitPython is imported
    only when ``in_repository`` says there may be one."""
    if not in_repository(path):
        return None
    import git

    try:
        return git.Repo(path, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return None


def revision_of(path: str) -> str:
    """The commit that ``path`` is checked out at (``+dirty`` if it has local changes).

    Empty when ``path`` is not inside a git work tree: a plain directory has no revision;
    nor has any directory on a machine without git.
    """
    repo = _open_repository(path)
    if repo is None:
        return ""
    import git  # imported already by _open_repository: for its exception

    try:
        try:
            sha = repo.head.commit.hexsha[:12]
        except ValueError:  # a repository with no commits yet
            return ""
        except git.GitCommandNotFound:  # no git executable: nothing to label with
            return ""
        root = repo.working_tree_dir or path
        relative = os.path.relpath(os.path.abspath(path), root)
        scope = None if relative == "." else relative
        dirty = repo.is_dirty(untracked_files=True, path=scope)
        return f"{sha}+dirty" if dirty else sha
    finally:
        repo.close()  # reading the commit started a `git cat-file` that would outlive us


def repository_of(path: str) -> tuple[str, str] | None:
    """(the work tree's root, ``path`` relative to it) when ``path`` is inside a git work
    tree, else None: ``diff --revision`` reads another commit of the same repository."""
    repo = _open_repository(path)
    if repo is None:
        return None
    try:
        root = repo.working_tree_dir
        if root is None:
            return None
        relative = os.path.relpath(os.path.abspath(path), root)
        return str(root), "" if relative == "." else relative
    finally:
        repo.close()
