"""A no-op ``reconciler diff`` of a plain directory loads only what it uses.

Start-up is most of what a no-op diff costs (issue 16: docker-py with requests and urllib3,
GitPython, the SOPS crypto and pathspec were a large share of it). The diff runs here as a
user runs it, in a subprocess, against the simulated engine of ``bench/`` (the real Engine
API over HTTP), and reports which of those libraries ended up in ``sys.modules``: counted,
never timed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.fake_engine import FakeEngine
from reconciler.check.validate import validate
from reconciler.desire.compute import compute_desired
from reconciler.desire.settings import Settings
from reconciler.source.hosts import Host
from reconciler.source.load import parse_text

INSTANCE = "startup"
RC = """apiVersion: v1
kind: ReplicationController
metadata: {name: web}
spec:
  replicas: 3
  selector: {app: web}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: app, image: "web:1"}]
"""
#: What a no-op diff of a plain directory has no use for.
UNUSED = ("docker", "requests", "urllib3", "git", "cryptography", "pyrage", "pathspec")

#: Runs the CLI as its entry point does, then writes the loaded top-level modules to a file.
WRAPPER = """
import atexit, json, sys
out = sys.argv.pop(1)
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(
    {name.split(".")[0] for name in sys.modules}))))
sys.argv[0] = "reconciler"
from reconciler.cli import main
main()
"""


def _diff(tmp_path: Path, engine: FakeEngine, *flags: str) -> tuple[int, str, set[str]]:
    hosts = tmp_path / "hosts.yaml"
    hosts.write_text(f"hosts:\n  - {{name: h1, url: '{engine.url}', address: 127.0.0.1}}\n")
    loaded = tmp_path / "modules.json"
    argv = [sys.executable, "-c", WRAPPER, str(loaded), "diff", "--source", str(tmp_path / "src")]
    argv += ["--hosts", str(hosts), "--instance", INSTANCE, *flags]
    env = {**os.environ, "RECONCILER_STATE_DIR": str(tmp_path / "state")}
    env.pop("DOCKER_HOST", None)
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, check=False)
    return done.returncode, done.stdout + done.stderr, set(json.loads(loaded.read_text()))


def _in_sync_engine(tmp_path: Path) -> FakeEngine:
    source = tmp_path / "src"
    source.mkdir()
    (source / "web.yaml").write_text(RC)
    engine = FakeEngine().start()
    result = validate(parse_text(RC, "web.yaml"))
    assert result.valid
    settings = Settings(instance=INSTANCE)
    desired = compute_desired(result.manifests, [Host("h1", engine.url, "127.0.0.1")], {}, settings)
    engine.seed(desired.pods, INSTANCE)
    return engine


def test_a_no_op_diff_of_a_directory_loads_no_docker_git_crypto_or_pathspec(
    tmp_path: Path,
) -> None:
    engine = _in_sync_engine(tmp_path)
    try:
        code, output, loaded = _diff(tmp_path, engine)
        assert code == 0, output
        assert "in sync" in output, output
        assert sorted(loaded & set(UNUSED)) == []
        # the list calls went to the engine: one for the containers, one for the volumes
        assert engine.requests.get("GET /containers/json") == 1, engine.requests
    finally:
        engine.stop()


def test_an_exclude_rule_still_loads_pathspec_and_is_applied(tmp_path: Path) -> None:
    """The check above can see an import: with ``--exclude`` pathspec is needed, loaded,
    and the excluded file is left out (else its error would fail the diff)."""
    engine = _in_sync_engine(tmp_path)
    try:
        (tmp_path / "src" / "compose.yaml").write_text("services: {web: {image: web}}\n")
        code, output, loaded = _diff(tmp_path, engine, "--exclude", "compose.yaml")
        assert code == 0, output
        assert "pathspec" in loaded
        assert "docker" not in loaded
    finally:
        engine.stop()
