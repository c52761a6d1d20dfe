"""``engine.listing`` (observe's list calls without docker-py) against the simulated engine,
and ``revision_of``'s look for a repository before GitPython.

The real engine's unix socket, tcp, TLS and ssh are in ``tests/integration/test_listing.py``
and ``test_remote_hosts.py``; here, what needs no Docker: the engine's refusals as ours,
the calls counted, an unknown url refused with words, and a plain directory told apart from
a work tree without asking git.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bench.fake_engine import FakeEngine
from reconciler.core.errors import ApplyError, HostUnavailable, NotFound
from reconciler.engine.client import list_containers, list_volumes
from reconciler.engine.listing import EngineLister, engine_message
from reconciler.source.git.revision import in_repository, revision_of
from reconciler.source.hosts import Host


def test_the_engine_s_refusals_are_ours_with_its_words_and_every_answer_is_counted() -> None:
    counted: list[str] = []
    with FakeEngine() as engine:
        lister = EngineLister(Host("fake", engine.url, "127.0.0.1"), 10, counted.append)
        assert list_containers(lister, {"label": ["a=b"]}, list) == []
        assert list_volumes(lister, {"label": ["a=b"]}) == []
        with pytest.raises(NotFound, match=r"^look: page not found: GET /nothing$"):
            lister.get("look", "/nothing", {})
        lister.close()
    assert counted == ["GET", "GET", "GET"]
    assert engine.requests["GET /containers/json"] == 1


def test_a_refusal_without_a_json_message_is_the_engine_s_text_or_its_status() -> None:
    assert engine_message(500, "Internal Server Error", b"{}") == "500 Internal Server Error"
    assert engine_message(400, "Bad Request", b"bad filter\n") == "bad filter"
    assert engine_message(409, "Conflict", b'{"message": "in use"}') == "in use"
    assert not issubclass(ApplyError, HostUnavailable)


def test_an_engine_url_of_no_known_kind_is_unavailable_with_words() -> None:
    lister = EngineLister(Host("odd", "npipe:////./pipe/docker", "127.0.0.1"), 10, print)
    with pytest.raises(HostUnavailable, match=r"host odd \(npipe:.*\): Invalid bind address"):
        lister.get("list containers", "/containers/json", {})


def test_a_plain_directory_is_in_no_repository_and_has_no_revision(tmp_path: Path) -> None:
    plain = tmp_path / "plain" / "deep"
    plain.mkdir(parents=True)
    assert not in_repository(str(plain))
    assert not in_repository(str(plain / "file.yaml"))
    assert revision_of(str(plain)) == ""


def test_a_work_tree_and_a_bare_repository_are_found_at_any_depth(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "a" / "b").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(tree)], check=True)
    assert in_repository(str(tree / "a" / "b"))
    assert in_repository(str(tree / "a" / "b" / "missing.yaml"))
    bare = tmp_path / "bare.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    assert in_repository(str(bare))
    (tmp_path / "linked").mkdir()
    (tmp_path / "linked" / ".git").write_text("gitdir: ../tree/.git\n")  # a worktree's file
    assert in_repository(str(tmp_path / "linked"))
