"""A Debian base image with python3, made here without a registry: ``mmdebstrap`` into a
tarball, then ``docker import``.

The Dockerfile's ``FROM`` stays the ordinary public image behind ``ARG BASE``; the image
test passes this one instead. It is made once per engine and kept (its tag names what it
holds), since debootstrapping takes minutes; ``RECONCILER_TEST_BASE_IMAGE`` names another.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import docker
import docker.errors
import pytest

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
#: what the reconciler's image needs from its base, and what its Dockerfile would otherwise
#: install with apt-get (which needs the network at build time)
PACKAGES = ("python3", "python3-venv", "git", "busybox-static", "ca-certificates", "openssh-client")
ENV_IMAGE = "RECONCILER_TEST_BASE_IMAGE"


def tag() -> str:
    digest = hashlib.sha256(" ".join((SUITE, *PACKAGES)).encode()).hexdigest()[:12]
    return f"reconciler-test/debian-python:{SUITE}-{digest}"


def _have(client: docker.DockerClient, name: str) -> bool:
    try:
        client.api.inspect_image(name)
    except docker.errors.ImageNotFound:
        return False
    return True


def _mmdebstrap() -> str:
    found = shutil.which("mmdebstrap")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (
            ["apt-get", "update", "-qq"],
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "mmdebstrap"],
        ):
            subprocess.run(command, env=env, capture_output=True, check=False, timeout=600)
        found = shutil.which("mmdebstrap")
        if found:
            return found
    message = "a base image without a registry needs mmdebstrap (apt-get install mmdebstrap)"
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def base_image(client: docker.DockerClient) -> str:
    """The base image's name, made now when the engine lacks it."""
    given = os.environ.get(ENV_IMAGE)
    if given:
        return given
    name = tag()
    if _have(client, name):
        return name
    program = _mmdebstrap()
    with tempfile.TemporaryDirectory(prefix="reconciler-base-") as scratch:
        tarball = Path(scratch) / "rootfs.tar"
        command = [program, "--quiet", "--variant=minbase", f"--include={','.join(PACKAGES)}"]
        completed = subprocess.run(
            [*command, SUITE, str(tarball), MIRROR],
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
        assert completed.returncode == 0, f"mmdebstrap failed:\n{completed.stderr[-3000:]}"
        with tarball.open("rb") as stream:
            repository, _, version = name.partition(":")
            client.api.import_image_from_data(stream.read(), repository=repository, tag=version)
    return name
