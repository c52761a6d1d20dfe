"""The forwarder's build and image: compiled once and cached, a prebuilt binary honoured,
a clear error without a compiler, and ``reconciler images forwarder`` on a real engine.
"""

from __future__ import annotations

import contextlib
import stat
from pathlib import Path
from uuid import uuid4

import docker
import docker.errors
import pytest
from click.testing import CliRunner

from reconciler.cli import cli
from reconciler.engine.images import is_static_elf
from reconciler.forwarder import build as forwarder_build


@pytest.fixture
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("RECONCILER_CACHE_DIR", str(cache))
    monkeypatch.delenv(forwarder_build.BINARY_ENV, raising=False)
    return cache


def test_the_build_is_static_cached_and_named_by_its_source(fresh_cache: Path) -> None:
    binary = forwarder_build.forwarder_binary()
    cached = fresh_cache / f"forwarder-{forwarder_build.source_digest()}"
    assert cached.read_bytes() == binary
    assert is_static_elf(binary)  # runs in an image that holds no libc
    mtime = cached.stat().st_mtime_ns
    assert forwarder_build.forwarder_binary() == binary  # from the cache: not rebuilt
    assert cached.stat().st_mtime_ns == mtime
    digest = forwarder_build.source_digest()
    assert forwarder_build.default_forwarder_image() == f"reconciler/forwarder:{digest}"


def test_a_prebuilt_binary_is_used_without_compiling(
    fresh_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prebuilt = tmp_path / "prebuilt"
    prebuilt.write_bytes(b"\x7fELF prebuilt stand-in")
    monkeypatch.setenv(forwarder_build.BINARY_ENV, str(prebuilt))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no compiler could run
    assert forwarder_build.forwarder_binary() == b"\x7fELF prebuilt stand-in"
    assert not fresh_cache.exists()
    monkeypatch.setenv(forwarder_build.BINARY_ENV, str(tmp_path / "missing"))
    with pytest.raises(forwarder_build.ForwarderBuildError, match="RECONCILER_FORWARDER_BINARY"):
        forwarder_build.forwarder_binary()


def test_no_compiler_is_a_clear_error(
    fresh_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv("CC", raising=False)
    with pytest.raises(forwarder_build.ForwarderBuildError) as raised:
        forwarder_build.forwarder_binary()
    message = str(raised.value)
    assert "no C compiler" in message and "gcc" in message and "libc6-dev" in message
    assert forwarder_build.BINARY_ENV in message


def test_cc_may_carry_arguments_and_a_missing_one_is_named(
    fresh_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CC", "env LC_ALL=C cc")  # a wrapper, as `ccache gcc` is
    assert is_static_elf(forwarder_build.forwarder_binary())
    monkeypatch.setenv("RECONCILER_CACHE_DIR", str(fresh_cache / "other"))
    monkeypatch.setenv("CC", "no-such-compiler -O2")
    with pytest.raises(forwarder_build.ForwarderBuildError, match="CC=no-such-compiler -O2"):
        forwarder_build.forwarder_binary()


def test_a_compiler_that_fails_is_reported_with_its_output(
    fresh_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "broken-cc"
    broken.write_text("#!/bin/sh\necho 'cannot find -lc: No such file' >&2\nexit 1\n")
    broken.chmod(broken.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("CC", str(broken))
    with pytest.raises(forwarder_build.ForwarderBuildError, match="cannot find -lc"):
        forwarder_build.forwarder_binary()
    assert not list(fresh_cache.glob("forwarder-*"))  # nothing half-made is cached


def test_images_forwarder_makes_an_image_that_runs_the_forwarder(
    docker_client: docker.DockerClient, fresh_cache: Path
) -> None:
    image = f"reconciler-test/forwarder:{uuid4().hex[:8]}"
    runner = CliRunner()
    try:
        made = runner.invoke(cli, ["images", "forwarder", "--image", image])
        assert made.exit_code == 0, made.output
        assert made.output.strip().endswith(image)
        again = runner.invoke(cli, ["images", "forwarder", "--image", image])
        assert again.exit_code == 0 and "(present)" in again.output, again.output
        # the program is in the image and runs there: a bad argument is its exit 2
        output = docker_client.containers.run(
            image, ["sh", "-c", "/bin/forwarder tcp:x= ; echo exit=$?"], remove=True, stderr=True
        ).decode()
        assert 'bad port "x"' in output and "exit=2" in output, output
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            docker_client.api.remove_image(image, force=True)


def test_images_forwarder_without_a_compiler_fails_cleanly(
    docker_client: docker.DockerClient,
    fresh_cache: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv("CC", raising=False)
    image = f"reconciler-test/forwarder:{uuid4().hex[:8]}"
    result = CliRunner().invoke(cli, ["images", "forwarder", "--image", image])
    assert result.exit_code == 1, result.output
    assert "no C compiler" in result.output
    assert "Traceback" not in result.output
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(image)
