"""The only module that talks to git (GitPython): where a source tree stands."""

from __future__ import annotations

import os

import git


def revision_of(path: str) -> str:
    """The commit that ``path`` is checked out at (``+dirty`` if it has local changes).

    Empty when ``path`` is not inside a git work tree: a plain directory has no revision.
    """
    try:
        repo = git.Repo(path, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return ""
    try:
        sha = repo.head.commit.hexsha[:12]
    except ValueError:  # a repository with no commits yet
        return ""
    root = repo.working_tree_dir or path
    relative = os.path.relpath(os.path.abspath(path), root)
    scope = None if relative == "." else relative
    dirty = repo.is_dirty(untracked_files=True, path=scope)
    return f"{sha}+dirty" if dirty else sha
