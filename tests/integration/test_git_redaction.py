"""No credential written into a git source's url ever reaches a message: real git, real remotes.

A GitOps source is often ``https://TOKEN@forge/org/repo`` (a token as the user name, the
way GitHub documents it), ``https://user:TOKEN@...`` or ``ssh://TOKEN@...``. What
``source.git`` raises goes to the log and to ``/status``; so does a ``GitSource`` a caller
prints, and the cache paths a message names. Each test makes git (or the source's own
checks) fail for real, against 127.0.0.1 only: a port nothing listens on, an https remote
(``git http-backend`` over TLS, ``gitremotes.HttpsRemote``) that lacks the ref or refuses
the token, a cache another sync holds, a url refused before git runs. Then it looks for the
token in everything the failure carries: its message, the exceptions chained to it, the
traceback a ``logger.exception`` would print.
"""

from __future__ import annotations

import fcntl
import secrets
import shutil
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.core.errors import SourceError, SourceUnavailable
from reconciler.source.git import GitSource, sync
from tests.integration.gitremotes import HttpsRemote, Upstream, free_port

#: Long and random: found only where it really leaked, and long enough that the redactor
#: treats it as a secret when it is the user name (``core.redact.url_secrets``).
TOKEN = "ghp_" + secrets.token_hex(18)

#: The three ways a token is written into a source's url.
FORMS = {
    "https-token-as-user": "https://{token}@127.0.0.1{port}{path}",
    "https-token-as-password": "https://oauth2:{token}@127.0.0.1{port}{path}",
    "ssh-token-as-user": "ssh://{token}@127.0.0.1{port}{path}",
}
HTTPS_FORMS = [form for form in FORMS if form.startswith("https")]


pytestmark = pytest.mark.usefixtures("no_leftover_processes")


def url_of(form: str, port: int | None = None, path: str = "/r.git", token: str = TOKEN) -> str:
    return FORMS[form].format(token=token, port=f":{port}" if port else "", path=path)


def assert_hidden(error: BaseException, token: str = TOKEN) -> None:
    """``token`` is in nothing a log line or ``/status`` could show of ``error``."""
    shown = "".join(traceback.format_exception(error))  # the message and the whole chain
    assert token not in shown, shown


@pytest.fixture
def https_remote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HttpsRemote]:
    """``repo.git`` (one commit on main) over https, for ``TOKEN`` only."""
    upstream = Upstream(tmp_path)
    upstream.commit({"pod.yaml": "kind: Pod\n"})
    upstream.push()
    certificates = tmp_path / "tls"
    certificates.mkdir()
    remote = HttpsRemote(upstream.bare.parent, TOKEN, certificates)
    monkeypatch.setenv("GIT_SSL_CAINFO", str(remote.ca_file))
    remote.start()
    try:
        yield remote
    finally:
        remote.stop()


@pytest.mark.parametrize("form", FORMS)
def test_an_unreachable_remote_never_shows_the_token(form: str, tmp_path: Path) -> None:
    if form.startswith("ssh") and shutil.which("ssh") is None:
        pytest.skip("no ssh client installed")
    port = free_port()
    source = GitSource(url_of(form, port), cache_dir=tmp_path / "cache")
    with pytest.raises(SourceUnavailable) as raised:
        sync(source, timeout=20)
    assert f"://***@127.0.0.1:{port}/r.git" in str(raised.value)  # still says which remote
    assert_hidden(raised.value)


@pytest.mark.parametrize("form", HTTPS_FORMS)
def test_a_missing_ref_on_a_real_remote_never_shows_the_token(
    form: str, https_remote: HttpsRemote, tmp_path: Path
) -> None:
    url = url_of(form, https_remote.port, "/repo.git")
    cache = tmp_path / "cache"
    # The remote takes the token: redacting messages never touches the url git is given.
    checkout = sync(GitSource(url, "main", cache_dir=cache), timeout=30)
    assert (checkout.manifests / "pod.yaml").is_file()
    for ref, expected in (
        ("nope", "has no branch, tag or commit named 'nope'"),
        ("refs/heads/nope", "has no branch named 'nope'"),
        ("refs/tags/main", "has no tag named 'main'"),
        ("0" * 40, "has no commit 0{40}"),
    ):
        with pytest.raises(SourceError, match=expected) as raised:
            sync(GitSource(url, ref, cache_dir=cache), timeout=30)
        assert f"https://***@127.0.0.1:{https_remote.port}/repo.git" in str(raised.value)
        assert_hidden(raised.value)


@pytest.mark.parametrize("form", HTTPS_FORMS)
def test_a_refused_token_is_never_shown(
    form: str, https_remote: HttpsRemote, tmp_path: Path
) -> None:
    wrong = "ghp_" + secrets.token_hex(18)
    source = GitSource(url_of(form, https_remote.port, "/repo.git", wrong), cache_dir=tmp_path)
    with pytest.raises(SourceError, match="Authentication failed") as raised:
        sync(source, timeout=30)
    assert_hidden(raised.value, wrong)


@pytest.mark.parametrize("form", FORMS)
def test_a_busy_cache_never_shows_the_token(form: str, tmp_path: Path) -> None:
    """No path in the url: the clone's name (which the message shows) comes from the host."""
    cache = tmp_path / "cache"
    cache.mkdir()
    source = GitSource(url_of(form, path=""), cache_dir=cache)
    with (cache / f"{source.work_tree.name}.lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as another process's sync would
        with pytest.raises(SourceUnavailable, match="another sync") as raised:
            sync(source, timeout=0.3)
    assert_hidden(raised.value)


@pytest.mark.parametrize("form", FORMS)
def test_a_refused_url_never_shows_the_token(form: str, tmp_path: Path) -> None:
    """The checks that run before git does quote the url: without its credentials."""
    url = url_of(form, 22)
    scheme_end = url.index("://")
    for bad in (url + " ", url + "\n", "-" + url, "ftp" + url[scheme_end:]):
        with pytest.raises(SourceError, match="invalid git url") as raised:
            GitSource(bad, cache_dir=tmp_path)
        assert "***@127.0.0.1:22" in str(raised.value)
        assert_hidden(raised.value)


@pytest.mark.parametrize("form", FORMS)
def test_the_source_value_never_shows_the_token(form: str, tmp_path: Path) -> None:
    """Its repr (what a log line of it prints) and its clone's directory name."""
    for path, stem in (("/r.git", "r"), ("", "127.0.0.1"), ("/", "127.0.0.1")):
        for port in (None, 8443):
            source = GitSource(url_of(form, port, path), "main", "apps", tmp_path)
            for shown in (repr(source), str(source), source.work_tree.name):
                assert TOKEN not in shown, shown
            assert "***@127.0.0.1" in repr(source)
            if port is None or path.strip("/"):  # a port and no path: the stem is the port
                assert source.work_tree.name.startswith(f"{stem}-"), source.work_tree
