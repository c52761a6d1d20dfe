"""The reconciler as an image: the repository's Dockerfile, built here without a registry,
runs ``reconciler run`` as a non-root user on the engine's socket, with its settings in a
config file and its state in a volume.

The base comes from Debian's packages (``baseimage``: mmdebstrap, ``docker import``) and is
passed as ``BASE``; the Dockerfile's own ``FROM`` stays the public Python image. The wheel
and its dependencies' wheels are the build context, so the build needs no network.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import uuid4

import docker
import docker.errors
import pytest
import yaml

from .baseimage import base_image
from .conftest import SAMPLE_PODS, Rig, fetch, free_port, wait_for
from .packaging import REPO, build_wheel, run

pytestmark = pytest.mark.slow

USER_ID = "10001"  # the Dockerfile's reconciler user


def engine_socket(client: docker.DockerClient) -> Path:
    url = str(client.api.base_url)
    if not url.startswith("http+docker://localhost") and not url.startswith("http+unix://"):
        pytest.skip(f"the image test mounts the engine's unix socket; this engine is {url}")
    path = Path(
        os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock").removeprefix("unix://")
    )
    if not path.is_socket():
        pytest.skip(f"no engine socket at {path}")
    return path


def build_image(client: docker.DockerClient, context: Path, tag: str, base: str) -> list[str]:
    """``docker build`` through the API (the legacy builder: no buildx here)."""
    log: list[str] = []
    for chunk in client.api.build(
        path=str(context),
        tag=tag,
        buildargs={"BASE": base, "PIP_INSTALL_OPTIONS": "--no-index"},
        rm=True,
        forcerm=True,
        decode=True,
    ):
        if "error" in chunk:
            pytest.fail(f"docker build failed: {chunk['error']}\n{''.join(log)[-4000:]}")
        log.append(str(chunk.get("stream", "")))
    return log


def test_the_image_runs_the_service_unprivileged_with_a_config_file_and_a_state_volume(
    docker_client: docker.DockerClient, make_rig: Callable[[], Rig], tmp_path: Path
) -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "ARG BASE=python:3.11-slim\nFROM ${BASE}\n" in dockerfile  # the public base by default
    socket_path = engine_socket(docker_client)
    started = time.monotonic()
    base = base_image(docker_client)
    base_s = time.monotonic() - started

    context = tmp_path / "context"
    dist = context / "dist"
    wheel = build_wheel(REPO, dist, RECONCILER_WHEEL_FORWARDER="require").path
    run([sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:",
         "-d", str(dist), str(wheel)])  # fmt: skip
    shutil.copy(REPO / "Dockerfile", context / "Dockerfile")
    shutil.copy(REPO / ".dockerignore", context / ".dockerignore")
    tag = f"reconciler-test/reconciler:{uuid4().hex[:8]}"
    started = time.monotonic()
    build_image(docker_client, context, tag, base)
    build_s = time.monotonic() - started

    rig = make_rig()
    rig.copy_sample()
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "config.yaml").write_text(
        yaml.safe_dump(
            {
                "source": "/manifests",
                "instance": rig.instance,
                "cluster-cidr": rig.env["RECONCILER_CLUSTER_CIDR"],
                "grace-period": 0,
                "resync": 10,
                "log-format": "json",
            }
        )
    )
    volume = f"reconciler-test-state-{uuid4().hex[:8]}"
    port = free_port()
    container: Any = None
    try:
        container = docker_client.containers.run(
            tag,
            detach=True,
            name=f"{rig.instance}-service",
            volumes={
                str(socket_path): {"bind": "/var/run/docker.sock", "mode": "rw"},
                str(etc): {"bind": "/etc/reconciler", "mode": "ro"},
                str(rig.src): {"bind": "/manifests", "mode": "ro"},
                volume: {"bind": "/var/lib/reconciler", "mode": "rw"},
            },
            group_add=[str(socket_path.stat().st_gid)],
            ports={"9477/tcp": ("127.0.0.1", port)},
        )

        def ready() -> bool:
            container.reload()
            assert container.status == "running", container.logs().decode()[-3000:]
            with contextlib.suppress(OSError):  # 503 until a pass has succeeded
                fetch(f"http://127.0.0.1:{port}/readyz", timeout=2)
                return True
            return False

        try:
            wait_for(ready, timeout=180, what="the containerised service to be ready")
        except BaseException:
            print(container.logs().decode(errors="replace")[-5000:])
            raise
        assert rig.pods() == {p: sorted(c) for p, c in SAMPLE_PODS.items()}
        code, uid = container.exec_run(["id", "-u"])
        assert (code, uid.decode().strip()) == (0, USER_ID)  # not root
        code, listing = container.exec_run(["ls", "/var/lib/reconciler"])
        assert code == 0 and f"hosts-{rig.instance}.json" in listing.decode(), listing
        container.stop(timeout=45)
        assert container.wait(timeout=60)["StatusCode"] == 0, container.logs().decode()[-3000:]
        size = docker_client.api.inspect_image(tag)["Size"]
        base_size = docker_client.api.inspect_image(base)["Size"]
        print(
            f"\nimage {tag}: {size / 2**20:.0f} MiB ({(size - base_size) / 2**20:.0f} MiB over "
            f"the base), built in {build_s:.1f} s; base {base}: {base_size / 2**20:.0f} MiB, "
            f"{base_s:.1f} s (0 when kept from an earlier run)"
        )
    finally:
        if container is not None:
            with contextlib.suppress(docker.errors.APIError):
                # v: the image's anonymous /var/cache/reconciler volume goes too (one was
                # left behind by every run)
                container.remove(force=True, v=True)
        with contextlib.suppress(docker.errors.APIError):
            docker_client.api.remove_volume(volume, force=True)
        with contextlib.suppress(docker.errors.APIError):
            docker_client.api.remove_image(tag, force=True)
