"""The wheel needs no compiler: built with its hook, installed in a fresh venv, it serves a
Service on a machine where no C compiler is on PATH.

The Service's forwarder image gets a name of its own, so it must be built from the binary
the wheel ships (an image left by another test cannot stand in for it); the cache is empty
and ``CC`` unset, so nothing could compile it.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path
from uuid import uuid4

import docker.errors
import pytest

from reconciler import __version__
from reconciler.forwarder.build import source_digest

from .conftest import Rig, answers, free_node_port
from .packaging import REPO, build_wheel, fresh_venv

pytestmark = pytest.mark.slow

MANIFESTS = """\
apiVersion: v1
kind: Pod
metadata: {{name: web, labels: {{app: web}}}}
spec:
  containers:
    - name: web
      image: sample/frontend:1.0
      command: ["sh", "-c"]
      args: ["mkdir -p /www && echo wheel > /www/index.html && exec httpd -f -p 80 -h /www"]
      ports: [{{containerPort: 80, name: http}}]
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  type: NodePort
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: http, nodePort: {node_port}}}]
"""


def test_the_wheel_ships_the_forwarder_and_serves_a_service_without_a_compiler(
    make_rig: Callable[[], Rig], tmp_path: Path
) -> None:
    built = build_wheel(REPO, tmp_path / "dist", RECONCILER_WHEEL_FORWARDER="require")
    wheel = built.path
    assert wheel.name == f"reconciler-{__version__}-py3-none-linux_{os.uname().machine}.whl"
    with zipfile.ZipFile(wheel) as archive:
        shipped = f"reconciler/forwarder/prebuilt/forwarder-{source_digest()}"
        assert shipped in archive.namelist()
        assert archive.read(shipped)[:4] == b"\x7fELF"
        assert "reconciler/schemas/v1/pod.json" in archive.namelist()
    venv = fresh_venv(tmp_path / "venv", str(wheel))

    rig = make_rig()
    node_port = free_node_port()
    rig.write("web.yaml", MANIFESTS.format(node_port=node_port))
    bin_dir = venv.path / "bin"
    env = {key: value for key, value in rig.process_env.items() if key not in ("CC", "PYTHONPATH")}
    env.update(PATH=str(bin_dir), RECONCILER_CACHE_DIR=str(tmp_path / "empty-cache"))
    for compiler in ("cc", "gcc", "clang"):
        assert not any((Path(d) / compiler).exists() for d in env["PATH"].split(":"))

    def reconciler(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(bin_dir / "reconciler"), *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    version = reconciler("--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.splitlines() == [
        f"reconciler {__version__}",
        f"forwarder {source_digest()} (prebuilt, shipped in the package)",
    ]
    image = f"reconciler-test/wheel-forwarder:{uuid4().hex[:8]}"
    try:
        applied = reconciler(
            "apply", "--source", str(rig.src), "--instance", rig.instance,
            "--forwarder-image", image, "--grace-period", "0",
        )  # fmt: skip
        assert applied.returncode == 0, applied.stdout + applied.stderr
        assert answers(f"http://127.0.0.1:{node_port}/", tries=10) == {"wheel"}
        assert not (tmp_path / "empty-cache").exists()  # nothing was compiled
    finally:
        with contextlib.suppress(docker.errors.APIError):
            rig.purge()
            rig.api.remove_image(image, force=True)
    size = wheel.stat().st_size
    print(
        f"\nwheel {wheel.name}: {size / 1024:.0f} KiB, built in {built.seconds:.1f} s; "
        f"fresh venv with it in {venv.seconds:.1f} s"
    )
