"""``scripts/pr-gate``, the pull-request gate of docs/ci.md, run as CI runs it: a bare
repository with ``main`` and a branch, a clone checked out at the branch (as
``actions/checkout`` does for a pull request), the script on it, the real engine behind the
diff.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from .conftest import RECONCILER_BIN, REPO, Rig
from .test_run import git

SCRIPT = REPO / "scripts" / "pr-gate"


def gate(rig: Rig, checkout: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**rig.process_env, "RECONCILER": str(RECONCILER_BIN)}
    return subprocess.run(
        [str(SCRIPT), "--instance", rig.instance, "--comment", "comment.md", *args],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def branches(rig: Rig) -> Path:
    """A bare repository holding the sample on ``main``, ``scale`` (frontend: 3 replicas)
    and ``broken`` (a typo in a field name)."""
    bare = rig.root / "manifests.git"
    work = rig.root / "author"
    git(rig.root, "init", "-q", "--bare", "-b", "main", str(bare))
    git(rig.root, "clone", "-q", str(bare), str(work))
    git(work, "checkout", "-q", "-b", "main")
    shutil.copytree(rig.src, work / "prod")
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "the sample")
    git(work, "push", "-q", "origin", "main")
    controller = work / "prod" / "frontend" / "controller.yaml"
    text = controller.read_text()
    git(work, "checkout", "-q", "-b", "scale")
    assert text.count("replicas: 2") == 1
    controller.write_text(text.replace("replicas: 2", "replicas: 3"))
    git(work, "commit", "-q", "-am", "frontend: 3 replicas")
    git(work, "push", "-q", "origin", "scale")
    git(work, "checkout", "-q", "-b", "broken", "main")
    controller.write_text(text.replace("containers:", "contianers:", 1))
    git(work, "commit", "-q", "-am", "a typo")
    git(work, "push", "-q", "origin", "broken")
    return bare


def checkout(rig: Rig, bare: Path, branch: str) -> Path:
    target = rig.root / f"ci-{branch}"
    git(rig.root, "clone", "-q", "--branch", branch, str(bare), str(target))
    return target


def test_the_gate_comments_the_plan_of_a_valid_branch(rig: Rig) -> None:
    rig.copy_sample()
    rig.applied()  # the hosts run main
    bare = branches(rig)
    ci = checkout(rig, bare, "scale")
    done = gate(rig, ci, "--source", "prod")
    assert done.returncode == 0, done.stdout + done.stderr
    comment = (ci / "comment.md").read_text()
    assert comment.startswith("### reconciler diff for `"), comment
    assert "**1 create**" in comment
    assert "| create | ReplicationController/default/frontend | frontend-2 |" in comment
    assert "::error" not in done.stdout
    # the same branch on hosts that already run it: in sync, still a comment
    assert rig.apply(source=ci / "prod").exit_code == 0
    done = gate(rig, ci, "--source", "prod")
    assert done.returncode == 0
    assert "**In sync**: no changes." in (ci / "comment.md").read_text()


def test_the_gate_fails_an_invalid_branch_with_annotations(rig: Rig) -> None:
    rig.copy_sample()
    bare = branches(rig)
    ci = checkout(rig, bare, "broken")
    done = gate(rig, ci, "--source", "prod")
    assert done.returncode == 1, done.stdout + done.stderr
    errors = [x for x in done.stdout.splitlines() if x.startswith("::error")]
    assert errors and all(
        x.startswith("::error file=prod/frontend/controller.yaml,line=") for x in errors
    )
    assert any("unknown field 'contianers'" in x for x in errors), errors
    comment = (ci / "comment.md").read_text()
    assert comment.startswith("### :x: reconciler: these manifests are invalid")
    assert "prod/frontend/controller.yaml:" in comment and "did you mean" in comment
    assert rig.containers() == []  # a gate never applies anything


def test_the_gate_says_when_it_cannot_tell(rig: Rig) -> None:
    rig.copy_sample()
    bare = branches(rig)
    ci = checkout(rig, bare, "scale")
    hosts = ci / "hosts.yaml"
    hosts.write_text("hosts:\n  - {name: h1, url: 'tcp://127.0.0.1:9', address: 127.0.0.1}\n")
    done = gate(rig, ci, "--source", "prod", "--hosts", str(hosts))
    assert done.returncode == 2, done.stdout + done.stderr
    comment = (ci / "comment.md").read_text()
    assert comment.startswith("### :warning: reconciler could not plan this change")
    assert "host `h1` unreachable" in comment
    valid_only = gate(rig, ci, "--source", "prod", "--no-diff")
    assert valid_only.returncode == 0
    assert os.access(SCRIPT, os.X_OK)
