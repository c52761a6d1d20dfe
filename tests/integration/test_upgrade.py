"""Upgrades keep running pods: the sample applied with the previous release, then this code.

The previous release is the newest one CHANGELOG.md names (``## vX.Y.Z (commit SHA)``): its
source comes from ``git archive`` of that commit (the clone has the history, whatever its
tags) and is pip-installed into a venv of its own, kept under ``.venv/releases/`` so that a
second run does not install it again. It applies the sample; then this code must find the
hosts in sync (``diff`` exit 0) and ``apply`` must touch no container.

Other work changes the desired state (probes, Deployments, Secrets, policy, scale): when it
changes the spec hash of a pod whose manifest did not change, this test fails and says which
pods would be recreated, and why. If that is unavoidable, CHANGELOG.md's Unreleased
"Upgrading" section says so in a ``Recreates:`` line, and the test then requires ``apply`` to
replace them through the rolling update, never more than one replica of a controller at once.
"""

from __future__ import annotations

import json
import re
import subprocess
import tarfile
import time
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest

from .conftest import SAMPLE_PODS, Rig, changed_pods
from .packaging import REPO, fresh_venv

pytestmark = pytest.mark.slow

CHANGELOG = REPO / "CHANGELOG.md"
RELEASE = re.compile(r"^## v(?P<version>\S+) \(commit (?P<commit>[0-9a-f]{7,40})\)", re.M)


def releases() -> list[tuple[str, str]]:
    """(version, commit) of every release CHANGELOG.md names, newest first."""
    return [(m["version"], m["commit"]) for m in RELEASE.finditer(CHANGELOG.read_text())]


def declared_recreations() -> list[str]:
    """The ``Recreates:`` lines of the Unreleased section."""
    text = CHANGELOG.read_text()
    unreleased = text.split("\n## Unreleased", 1)[-1].split("\n## v", 1)[0]
    return re.findall(r"^\s*(?:- )?Recreates:\s*(.+)$", unreleased, re.M)


def install_release(commit: str, version: str) -> Path:
    """The release's ``reconciler`` command, installed once into ``.venv/releases/``."""
    home = REPO / ".venv" / "releases" / f"v{version}-{commit}"
    command = home / "venv" / "bin" / "reconciler"
    if command.exists():
        return command
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", commit],
        capture_output=True,
        timeout=120,
        check=False,
    )
    if archive.returncode != 0:
        pytest.fail(
            f"git archive {commit} failed (a shallow clone?): {archive.stderr.decode()[-500:]}"
        )
    source = home / "src"
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(source, filter="data")
    fresh_venv(home / "venv", str(source))
    return command


def plan_actions(rig: Rig) -> tuple[int, list[dict[str, Any]]]:
    result = rig.diff("-o", "json")
    return result.exit_code, json.loads(result.output)["changes"] if result.output else []


def explain(actions: list[dict[str, Any]]) -> str:
    """Which pods would be recreated and why, one line each, with the changed fields."""
    lines = []
    for action in actions:
        fields = ", ".join(
            f"{f['path']}: {f['old']!r} -> {f['new']!r}" for f in action.get("fields", [])
        )
        why = action["reason"].rstrip(": ")
        if not fields and action["action"] == "recreate":
            fields = (
                "no field of the pod's spec differs: what else the spec hash covers changed "
                "(owner, labels, infra image, network, published ports), or how it is computed"
            )
        lines.append(
            f"  {action['action']} {action['kind']}/{action['name']} pod {action['pod']} on "
            f"{action['host']}: {why}" + (f" [{fields}]" if fields else "")
        )
    return "\n".join(lines)


def test_upgrading_from_the_previous_release_keeps_every_pod(rig: Rig) -> None:
    known = releases()
    assert known, "CHANGELOG.md names no release (## vX.Y.Z (commit SHA))"
    version, commit = known[0]
    started = time.monotonic()
    previous = install_release(commit, version)
    installed_s = time.monotonic() - started
    shown = subprocess.run(
        [str(previous), "--version"], capture_output=True, text=True, check=False
    )
    assert version in shown.stdout, shown.stdout

    old_apply = subprocess.run(
        [str(previous), "apply", "--source", str(rig.src), "--instance", rig.instance,
         "--grace-period", "0"],
        env=rig.process_env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert old_apply.returncode == 0, old_apply.stdout + old_apply.stderr
    assert rig.pods() == {p: sorted(c) for p, c in SAMPLE_PODS.items()}
    before = rig.ids()
    forwarders_before = {name: c["Id"] for name, c in rig.forwarders().items()}

    code, actions = plan_actions(rig)
    recreations = declared_recreations()
    if not recreations:
        assert (code, actions) == (0, []), (
            f"upgrading from v{version} ({commit}) would change running pods whose manifests "
            f"did not change:\n{explain(actions)}\nEither keep their spec hash, or say so in "
            "CHANGELOG.md's Unreleased 'Upgrading' section ('Recreates: ...') so that "
            "operators know; apply then rolls them one replica at a time."
        )
        applied = rig.applied()
        assert "applied 0 of 0 action(s)" in applied.output, applied.output
        assert rig.ids() == before
        assert {n: c["Id"] for n, c in rig.forwarders().items()} == forwarders_before
    else:
        assert code == 1 and actions, "CHANGELOG.md declares recreations, but nothing changes"
        applied = rig.applied()
        assert applied.exit_code == 0, applied.output
        # a controller's stale pods are recreated in its rollout group, one at a time
        # (plan.planner; test_rollout.py shows a controller never drops below replicas - 1);
        # pods the plan did not name keep their containers
        recreated = [a for a in actions if a["action"] == "recreate"]
        rolled = {a["pod"] for a in recreated if a["kind"] != "Service"}
        assert changed_pods(before, rig.ids()) == rolled, applied.output
        # a Service's forwarder replaced is the Service's, and only those the plan named
        replaced = {a["name"] for a in recreated if a["kind"] == "Service"}
        after = {n: c["Id"] for n, c in rig.forwarders().items()}
        assert after.keys() == forwarders_before.keys()
        assert {n for n in after if after[n] != forwarders_before[n]} == replaced
        assert rig.diff().exit_code == 0
    print(
        f"\nupgrade from v{version} ({commit}): previous release installed in "
        f"{installed_s:.1f} s; {len(before)} containers kept"
    )
