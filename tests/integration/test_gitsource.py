"""``source.git.sync`` against real git: bare repositories, ``git daemon``, nothing mocked.

Each test makes its repositories with the ``git`` CLI under ``tmp_path`` (the helpers are
in ``gitremotes``); the ``git://`` tests serve them with a ``git daemon`` on 127.0.0.1 that
the fixture stops (its whole process group) at teardown. An autouse fixture then checks that
no process is left whose working directory is under ``tmp_path``: a git killed at a
timeout, a daemon child, a half-killed clone. Only 127.0.0.1 is ever contacted.

No Docker fixture is used; the integration conftest is imported but asks for nothing here.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from reconciler.core.errors import SourceError, SourceFailure, SourceUnavailable
from reconciler.source.git import Checkout, GitSource, revision_of, sync
from tests.integration.gitremotes import Daemon, Upstream, free_port, run_git

REPO = Path(__file__).resolve().parents[2]


pytestmark = pytest.mark.usefixtures("no_leftover_processes")

# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def upstream(tmp_path: Path) -> Upstream:
    """A remote whose main branch holds two apps' manifests and a README."""
    repo = Upstream(tmp_path)
    repo.commit(
        {
            "README.md": "manifests\n",
            "apps/web/pod.yaml": "kind: Pod\n",
            "apps/db/pod.yaml": "kind: Pod\n",
        },
        "first",
    )
    repo.push()
    return repo


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    served = tmp_path / "served"
    served.mkdir(exist_ok=True)
    running = Daemon(served)
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(params=["path", "file", "git"])
def url_of(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[Upstream], str]]:
    """How a test reaches an upstream: a plain path, a file:// url, or git:// via a daemon."""
    if request.param == "path":
        yield lambda up: str(up.bare)
    elif request.param == "file":
        yield lambda up: up.bare.as_uri()
    else:
        served = tmp_path / "served"
        served.mkdir(exist_ok=True)
        running = Daemon(served)
        running.start()
        try:
            yield lambda up: running.url(up.name)
        finally:
            running.stop()


def files_of(checkout: Checkout) -> set[str]:
    """Every file in the work tree outside .git, relative to the root."""
    root = checkout.root
    return {
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file() and ".git" not in path.relative_to(root).parts
    }


# -- cloning and updating, over every transport ---------------------------------------------


def test_clone_then_noop_then_new_commit(
    upstream: Upstream, url_of: Callable[[Upstream], str], cache: Path
) -> None:
    source = GitSource(url_of(upstream), cache_dir=cache)
    first = sync(source)
    assert first.changed
    assert first.revision == upstream.head()
    assert first.ref == "refs/heads/main"
    assert first.manifests == first.root
    assert files_of(first) == {"README.md", "apps/web/pod.yaml", "apps/db/pod.yaml"}
    assert first.root.parent == cache.absolute()

    again = sync(source)
    assert not again.changed
    assert again.revision == first.revision
    assert again.root == first.root

    second = upstream.commit({"apps/web/pod.yaml": "kind: Pod\n# v2\n"})
    upstream.push()
    after = sync(source)
    assert after.changed
    assert after.revision == second
    assert (after.root / "apps/web/pod.yaml").read_text() == "kind: Pod\n# v2\n"
    assert revision_of(str(after.root)) == second[:12]  # a clean tree: no "+dirty"


def test_deleted_file_disappears_and_force_push_is_followed(
    upstream: Upstream, url_of: Callable[[Upstream], str], cache: Path
) -> None:
    source = GitSource(url_of(upstream), "main", cache_dir=cache)
    before = upstream.commit({"apps/cache/pod.yaml": "kind: Pod\n"})
    upstream.push()
    assert "apps/cache/pod.yaml" in files_of(sync(source))

    upstream.commit({"apps/cache/pod.yaml": None}, "remove cache")
    upstream.push()
    removed = sync(source)
    assert removed.changed
    assert "apps/cache/pod.yaml" not in files_of(removed)
    assert not (removed.root / "apps/cache").exists()

    # Rewrite history: main goes back to ``before`` plus a different commit.
    upstream.switch("main", before)
    rewritten = upstream.commit({"apps/web/pod.yaml": "kind: Pod\n# rewritten\n"}, "rewrite")
    upstream.push(force=True)
    forced = sync(source)
    assert forced.changed
    assert forced.revision == rewritten
    assert (forced.root / "apps/web/pod.yaml").read_text().endswith("# rewritten\n")
    assert "apps/cache/pod.yaml" in files_of(forced)


def test_sub_directory(upstream: Upstream, url_of: Callable[[Upstream], str], cache: Path) -> None:
    checkout = sync(GitSource(url_of(upstream), "main", "./apps/web/", cache))
    assert checkout.manifests == checkout.root / "apps" / "web"
    assert (checkout.manifests / "pod.yaml").is_file()


# -- refs -----------------------------------------------------------------------------------


def test_branch_tag_and_commit_refs(upstream: Upstream, cache: Path) -> None:
    url = str(upstream.bare)
    first = upstream.head()
    run_git("tag", "v1", cwd=upstream.scratch)
    run_git("tag", "--annotate", "-m", "release", "v1-annotated", cwd=upstream.scratch)
    upstream.switch("staging")
    staging = upstream.commit({"apps/web/pod.yaml": "kind: Pod\n# staging\n"})
    upstream.push("main", "staging", "--tags")

    main = sync(GitSource(url, "main", cache_dir=cache))
    assert (main.revision, main.ref) == (first, "refs/heads/main")
    branch = sync(GitSource(url, "staging", cache_dir=cache))
    assert (branch.revision, branch.ref) == (staging, "refs/heads/staging")
    assert (branch.root / "apps/web/pod.yaml").read_text().endswith("# staging\n")
    assert branch.root != main.root  # two sources never share a work tree

    for tag in ("v1", "v1-annotated", "refs/tags/v1"):
        tagged = sync(GitSource(url, tag, cache_dir=cache))
        assert tagged.revision == first, tag  # an annotated tag is peeled to its commit
        assert tagged.ref == f"refs/tags/{tag.removeprefix('refs/tags/')}"
        head_file = (tagged.root / ".git" / "HEAD").read_text().strip()
        assert head_file == first, "a tag is checked out as a detached HEAD"

    for commit in (first, first[:10]):
        pinned = sync(GitSource(url, commit, cache_dir=cache))
        assert (pinned.revision, pinned.ref) == (first, first)
        assert (pinned.root / ".git" / "HEAD").read_text().strip() == first

    qualified = sync(GitSource(url, "refs/heads/staging", cache_dir=cache))
    assert qualified.revision == staging
    assert (qualified.root / ".git" / "HEAD").read_text().strip() == "ref: refs/heads/staging"


def test_a_name_that_is_a_branch_and_a_tag(upstream: Upstream, cache: Path) -> None:
    first = upstream.head()
    run_git("tag", "release", cwd=upstream.scratch)
    upstream.switch("release")
    second = upstream.commit({"README.md": "release branch\n"})
    upstream.push("main", "refs/heads/release", "refs/tags/release")
    url = upstream.bare.as_uri()
    assert sync(GitSource(url, "release", cache_dir=cache)).revision == second
    assert sync(GitSource(url, "refs/heads/release", cache_dir=cache)).revision == second
    assert sync(GitSource(url, "refs/tags/release", cache_dir=cache)).revision == first


def test_moved_tag_and_remote_default_branch(upstream: Upstream, cache: Path) -> None:
    url = upstream.bare.as_uri()
    run_git("tag", "prod", cwd=upstream.scratch)
    upstream.push("main", "--tags")
    tagged = GitSource(url, "prod", cache_dir=cache)
    assert sync(tagged).revision == upstream.head()
    moved = upstream.commit({"README.md": "v2\n"})
    run_git("tag", "--force", "prod", cwd=upstream.scratch)
    upstream.push("main", "--tags", force=True)
    retagged = sync(tagged)
    assert (retagged.revision, retagged.changed) == (moved, True)

    default = GitSource(url, cache_dir=cache)
    assert sync(default).ref == "refs/heads/main"
    upstream.switch("trunk")
    trunk = upstream.commit({"README.md": "trunk\n"})
    upstream.push("trunk")
    run_git("symbolic-ref", "HEAD", "refs/heads/trunk", cwd=upstream.bare)
    switched = sync(default)
    assert (switched.ref, switched.revision, switched.changed) == ("refs/heads/trunk", trunk, True)


def test_pinned_commit_needs_no_fetch(upstream: Upstream, cache: Path, tmp_path: Path) -> None:
    commit = upstream.head()
    source = GitSource(upstream.bare.as_uri(), commit, cache_dir=cache)
    assert sync(source).changed
    upstream.bare.rename(tmp_path / "gone.git")  # the remote disappears
    again = sync(source)
    assert (again.revision, again.changed) == (commit, False)


# -- the work tree is exactly the commit ----------------------------------------------------


def test_local_changes_are_discarded(upstream: Upstream, cache: Path) -> None:
    upstream.commit({".gitignore": "*.tmp\n"})
    upstream.push()
    source = GitSource(upstream.bare.as_uri(), "main", cache_dir=cache)
    checkout = sync(source)
    expected = files_of(checkout)
    (checkout.root / "apps/web/pod.yaml").write_text("tampered\n")
    (checkout.root / "apps/db/pod.yaml").unlink()
    (checkout.root / "apps/stray").mkdir()
    (checkout.root / "apps/stray/pod.yaml").write_text("kind: Pod\n")
    (checkout.root / "ignored.tmp").write_text("ignored but still not in the commit\n")
    again = sync(source)
    assert not again.changed
    assert files_of(again) == expected
    assert (again.root / "apps/web/pod.yaml").read_text() == "kind: Pod\n"
    assert not (again.root / "apps/stray").exists()
    assert revision_of(str(again.root)) == again.revision[:12]


def test_git_dir_in_the_environment_is_ignored(
    upstream: Upstream, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run from a git hook, GIT_DIR points elsewhere: sync must not fetch or clean there."""
    bystander = tmp_path / "bystander"
    bystander.mkdir()
    run_git("init", "--quiet", cwd=bystander)
    (bystander / "precious.txt").write_text("untracked, must survive\n")
    monkeypatch.setenv("GIT_DIR", str(bystander / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(bystander))
    monkeypatch.setenv("GIT_INDEX_FILE", str(bystander / ".git" / "index"))
    checkout = sync(GitSource(str(upstream.bare), "main", cache_dir=cache))
    assert checkout.revision == upstream.head()
    assert (bystander / "precious.txt").exists()
    assert not list((bystander / ".git" / "refs" / "heads").iterdir())


# -- permanent errors -----------------------------------------------------------------------


def test_wrong_ref_is_a_source_error(
    upstream: Upstream, url_of: Callable[[Upstream], str], cache: Path
) -> None:
    url = url_of(upstream)
    with pytest.raises(SourceError, match=r"no branch, tag or commit named 'nope'.*branches: main"):
        sync(GitSource(url, "nope", cache_dir=cache))
    with pytest.raises(SourceError, match="no branch named 'nope'"):
        sync(GitSource(url, "refs/heads/nope", cache_dir=cache))
    with pytest.raises(SourceError, match="no tag named 'main'"):
        sync(GitSource(url, "refs/tags/main", cache_dir=cache))
    with pytest.raises(SourceError, match=r"no commit 0{40}"):
        sync(GitSource(url, "0" * 40, cache_dir=cache))


def test_deleted_branch_is_a_source_error(upstream: Upstream, cache: Path) -> None:
    upstream.switch("feature")
    upstream.push("feature")
    source = GitSource(upstream.bare.as_uri(), "feature", cache_dir=cache)
    sync(source)
    run_git("push", "--quiet", "origin", "--delete", "feature", cwd=upstream.scratch)
    with pytest.raises(SourceError, match="no branch, tag or commit named 'feature'"):
        sync(source)


def test_missing_or_escaping_sub_directory(upstream: Upstream, cache: Path) -> None:
    url = str(upstream.bare)
    with pytest.raises(SourceError, match=r"'apps/nope' does not exist at refs/heads/main"):
        sync(GitSource(url, "main", "apps/nope", cache))
    with pytest.raises(SourceError, match=r"'README\.md' is not a directory"):
        sync(GitSource(url, "main", "README.md", cache))
    (upstream.scratch / "outside").symlink_to("/tmp")
    (upstream.scratch / "inside-git").symlink_to(".git")
    upstream.commit({})
    upstream.push()
    with pytest.raises(SourceError, match="leads outside the repository"):
        sync(GitSource(url, "main", "outside", cache))
    with pytest.raises(SourceError, match=r"leads into \.git"):
        sync(GitSource(url, "main", "inside-git", cache))
    for bad in ("../x", "apps/../../x", "/etc", ".git", "a/.git/b"):
        with pytest.raises(SourceError, match="invalid sub-directory"):
            GitSource(url, "main", bad, cache)


def test_malformed_sources_are_refused_before_git_runs(cache: Path) -> None:
    for ref in ("-x", "a..b", "a b", "a:b", "x.lock", "a//b", "@", "a@{1}", "a~1", "/a", "a/"):
        with pytest.raises(SourceError, match="invalid git ref"):
            GitSource("/tmp/x", ref, cache_dir=cache)
    for url in ("", "-oProxyCommand=x", "ext::sh -c x", "ftp://127.0.0.1/x", " /x"):
        with pytest.raises(SourceError, match="invalid git url"):
            GitSource(url, cache_dir=cache)


def test_not_a_repository(tmp_path: Path, cache: Path, daemon: Daemon) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    for url in (str(tmp_path / "missing"), str(plain), plain.as_uri(), daemon.url("missing")):
        with pytest.raises(SourceError) as raised:
            sync(GitSource(url, cache_dir=cache), timeout=20)
        message = str(raised.value)
        assert re.search("not appear to be a git repository|no such repository", message), message
    assert not list(cache.glob("*.tmp-*")), "a failed clone leaves nothing behind"


def test_empty_remote_has_no_default_branch(tmp_path: Path, cache: Path) -> None:
    empty = tmp_path / "empty.git"
    run_git("init", "--quiet", "--bare", str(empty))
    with pytest.raises(SourceError, match="has no default branch"):
        sync(GitSource(str(empty), cache_dir=cache))


# -- temporary errors -----------------------------------------------------------------------


def test_unreachable_remote_then_back(upstream: Upstream, cache: Path, tmp_path: Path) -> None:
    daemon = Daemon(tmp_path / "served")
    source = GitSource(daemon.url(upstream.name), "main", cache_dir=cache)
    started = time.monotonic()
    with pytest.raises(SourceUnavailable, match="Connection refused"):
        sync(source, timeout=20)  # nothing listens yet: before the first clone
    assert time.monotonic() - started < 10  # refused at once: no waiting for the timeout
    daemon.start()
    try:
        assert sync(source).revision == upstream.head()
    finally:
        daemon.stop()
    newer = upstream.commit({"README.md": "while it was down\n"})
    upstream.push()
    started = time.monotonic()
    with pytest.raises(SourceUnavailable, match="Connection refused"):
        sync(source, timeout=20)  # went away after the clone
    assert time.monotonic() - started < 10  # refused at once: no waiting for the timeout
    daemon.start()  # the same port again
    try:
        back = sync(source)
    finally:
        daemon.stop()
    assert (back.revision, back.changed) == (newer, True)


def test_a_remote_that_never_answers_is_killed_at_the_timeout(cache: Path) -> None:
    """A listener that accepts (the kernel's backlog) but never speaks: git would hang."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        source = GitSource(f"git://127.0.0.1:{port}/repo.git", cache_dir=cache)
        started = time.monotonic()
        with pytest.raises(SourceUnavailable, match=r"no answer within 1\.5 s"):
            sync(source, timeout=1.5)
        elapsed = time.monotonic() - started
    # Without the kill git would wait forever. Past the 1.5 s, the kill itself takes time:
    # GitPython finds git's children with pgrep, seconds on a machine under heavy load.
    assert 1.4 < elapsed < 15, elapsed
    assert not list(cache.glob("*.tmp-*"))


@pytest.mark.skipif(shutil.which("ssh") is None, reason="no ssh client installed")
def test_ssh_never_prompts(cache: Path) -> None:
    source = GitSource(f"ssh://git@127.0.0.1:{free_port()}/repo.git", cache_dir=cache)
    started = time.monotonic()
    with pytest.raises(SourceUnavailable, match="Connection refused"):
        sync(source, timeout=20)
    assert time.monotonic() - started < 10


class _Unauthorized(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="git"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_http_credentials_are_never_prompted_for_nor_shown(cache: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Unauthorized)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        for url in (
            f"http://127.0.0.1:{port}/repo.git",
            f"http://user:s3cret@127.0.0.1:{port}/repo.git",
        ):
            started = time.monotonic()
            with pytest.raises(SourceError) as raised:
                sync(GitSource(url, cache_dir=cache), timeout=20)
            assert time.monotonic() - started < 10
            assert "s3cret" not in str(raised.value)
            assert "prompts disabled" in str(raised.value) or "Authentication failed" in str(
                raised.value
            ), raised.value
    finally:
        server.shutdown()
        server.server_close()


def test_a_sync_in_progress_holds_the_cache(upstream: Upstream, cache: Path) -> None:
    source = GitSource(str(upstream.bare), "main", cache_dir=cache)
    results: list[Checkout | SourceFailure] = []

    def run() -> None:
        try:
            results.append(sync(source))
        except SourceFailure as failure:
            results.append(failure)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(isinstance(result, Checkout) for result in results), results
    revisions = {result.revision for result in results if isinstance(result, Checkout)}
    assert revisions == {upstream.head()}
    assert sum(result.changed for result in results if isinstance(result, Checkout)) == 1

    lock = cache / f"{source.work_tree.name}.lock"
    with lock.open("w") as held:  # hold the lock as another process would
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(SourceUnavailable, match="another sync"):
            sync(source, timeout=0.3)


# -- damaged caches -------------------------------------------------------------------------


def _damage_empty_git_dir(work_tree: Path) -> None:
    git_dir = work_tree / ".git"
    shutil.rmtree(git_dir)
    git_dir.mkdir()


def _damage_head(work_tree: Path) -> None:
    (work_tree / ".git" / "HEAD").write_text("garbage\n")


def _damage_objects(work_tree: Path) -> None:
    objects = work_tree / ".git" / "objects"
    for entry in objects.iterdir():
        if entry.name not in ("info",):
            shutil.rmtree(entry)
    (objects / "pack").mkdir()


def _damage_packs(work_tree: Path) -> None:
    for pack in (work_tree / ".git" / "objects").rglob("*"):
        if pack.is_file():
            pack.chmod(0o644)
            pack.write_bytes(pack.read_bytes()[:20])


def _damage_index_lock(work_tree: Path) -> None:
    (work_tree / ".git" / "index.lock").write_text("")
    (work_tree / ".git" / "refs" / "heads" / "main.lock").write_text("")


def _damage_config(work_tree: Path) -> None:
    (work_tree / ".git" / "config").write_text("[[[ not a config\n")


def _damage_replace_with_file(work_tree: Path) -> None:
    shutil.rmtree(work_tree)
    work_tree.write_text("not a directory\n")


@pytest.mark.parametrize(
    "damage",
    [
        _damage_empty_git_dir,
        _damage_head,
        _damage_objects,
        _damage_packs,
        _damage_index_lock,
        _damage_config,
        _damage_replace_with_file,
    ],
)
def test_damaged_cache_is_recovered(
    upstream: Upstream, cache: Path, damage: Callable[[Path], None]
) -> None:
    source = GitSource(upstream.bare.as_uri(), "main", cache_dir=cache)
    first = sync(source)
    damage(first.root)
    newer = upstream.commit({"apps/web/pod.yaml": "kind: Pod\n# after the damage\n"})
    upstream.push()
    recovered = sync(source)
    assert recovered.revision == newer
    assert (recovered.root / "apps/web/pod.yaml").read_text().endswith("# after the damage\n")
    assert revision_of(str(recovered.root)) == newer[:12]
    assert sync(source).changed is False
    name = source.work_tree.name
    assert sorted(p.name for p in cache.iterdir()) == [name, f"{name}.lock", f"{name}.synced"]


def test_stale_git_locks_are_cleared_without_a_new_clone(upstream: Upstream, cache: Path) -> None:
    """A git killed mid-checkout leaves index.lock: cleared under our lock, clone kept."""
    source = GitSource(str(upstream.bare), "main", cache_dir=cache)
    first = sync(source)
    identity = first.root.stat().st_ino
    _damage_index_lock(first.root)
    again = sync(source)
    assert again.root.stat().st_ino == identity
    assert not (again.root / ".git" / "index.lock").exists()


def test_a_new_clone_of_the_same_commit_is_not_a_change(upstream: Upstream, cache: Path) -> None:
    source = GitSource(str(upstream.bare), "main", cache_dir=cache)
    first = sync(source)
    _damage_head(first.root)
    recloned = sync(source)
    assert (recloned.revision, recloned.changed) == (first.revision, False)


def test_litter_of_killed_clones_is_swept(upstream: Upstream, cache: Path) -> None:
    source = GitSource(str(upstream.bare), "main", cache_dir=cache)
    cache.mkdir()
    half = cache / f"{source.work_tree.name}.tmp-deadbeef"
    (half / ".git" / "objects").mkdir(parents=True)
    (cache / f"{source.work_tree.name}.trash-cafebabe").mkdir()
    sync(source)
    assert not list(cache.glob("*.tmp-*")) and not list(cache.glob("*.trash-*"))


_SYNC_SCRIPT = """
import sys
from pathlib import Path
from reconciler.source.git import GitSource, sync
sync(GitSource(sys.argv[1], "main", cache_dir=Path(sys.argv[2])), timeout=60)
"""


def test_a_sync_killed_at_any_moment_is_recovered(tmp_path: Path, cache: Path) -> None:
    """SIGKILL a sync (its whole process group, git included) mid-way; the next one works.

    Each delay is tried on an empty cache (the kill lands in the clone) and on a cache one
    commit behind (the kill lands in the fetch or the checkout of 2,000 files); where
    exactly depends on the machine, which is the point of trying several.
    """
    big = Upstream(tmp_path, "big")
    big.commit({f"dir{i % 20}/file{i}.yaml": f"n: {i}\n" * 200 for i in range(2000)})
    big.push()
    url = big.bare.as_uri()
    python = str(REPO / ".venv" / "bin" / "python")
    if not Path(python).exists():
        python = sys.executable
    for delay in (0.15, 0.5, 1.0):
        for fresh in (True, False):
            if fresh:
                shutil.rmtree(cache, ignore_errors=True)
            else:  # rewrite every file: the checkout the kill interrupts is a long one
                big.commit({f"dir{i % 20}/file{i}.yaml": f"n: {delay}\n" for i in range(2000)})
                big.push()
            process = subprocess.Popen(
                [python, "-c", _SYNC_SCRIPT, url, str(cache)],
                cwd=tmp_path,
                start_new_session=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(delay)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            # killed, or done before the kill; never failed on its own (an ImportError would
            # make this test pass without ever interrupting a sync)
            assert process.wait(timeout=10) in (0, -signal.SIGKILL), process.returncode
            checkout = sync(GitSource(url, "main", cache_dir=cache))
            assert checkout.revision == big.head()
            assert len(files_of(checkout)) == 2000
            assert revision_of(str(checkout.root)) == big.head()[:12]


# -- speed ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_sync_of_a_small_change_is_fast(tmp_path: Path, cache: Path, daemon: Daemon) -> None:
    """1,000 files; one changes. Prints the medians; asserts only a generous bound."""
    repo = Upstream(tmp_path, "thousand")
    repo.commit({f"app{i % 25}/obj{i}.yaml": f"kind: Pod\nindex: {i}\n" for i in range(1000)})
    repo.push()
    report = []
    for transport, url in (("file", repo.bare.as_uri()), ("git", daemon.url("thousand"))):
        source = GitSource(url, "main", cache_dir=cache)
        sync(source)
        noop, change = [], []
        for round_ in range(7):
            started = time.perf_counter()
            assert not sync(source).changed
            noop.append(time.perf_counter() - started)
            repo.commit({f"app0/obj{round_ * 25}.yaml": f"kind: Pod\nround: {round_}\n"})
            repo.push()
            started = time.perf_counter()
            assert sync(source).changed
            change.append(time.perf_counter() - started)
        report.append(
            f"{transport}: no-op {statistics.median(noop) * 1000:.0f} ms, "
            f"one-file change {statistics.median(change) * 1000:.0f} ms"
        )
        assert statistics.median(change) < 2.0
    print("\n" + "\n".join(report))
