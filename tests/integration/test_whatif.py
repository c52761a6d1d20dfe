"""What-if plans against real engines: ``diff --assume-down HOST`` on 3 hosts made by
``scripts/testhosts``, compared with what happens after that host's real loss; and
``diff --revision REF`` on a git source, before the branch is merged.
"""

from __future__ import annotations

import json
import time
from typing import Any

from .conftest import Rig, wait_for
from .test_multihost import KEYSTONES, Cluster, _answers, cluster
from .test_run import git
from .testhosts import test_hosts

__all__ = ["cluster", "test_hosts"]  # the fixtures, imported to be found

GRACE = "4"


def actions(plan: dict[str, Any]) -> set[tuple[str, str, str, str]]:
    return {(c["action"], c["kind"], c["pod"], c["host"]) for c in plan["changes"]}


def test_assume_down_predicts_what_a_real_loss_does(cluster: Cluster) -> None:
    assert cluster.apply().exit_code == 0
    placement = cluster.placement()
    lost = placement["keystone-1"][0]
    others = tuple(h for h in cluster.apis if h != lost)
    what_if = cluster.diff("--assume-down", lost, "--host-grace", GRACE, "-o", "json")
    assert what_if.exit_code == 1, what_if.output  # changes, and the assumed loss is no error
    predicted = json.loads(what_if.output)
    assert predicted["assume_down"] == [lost]
    assert list(predicted["unreachable"]) == [lost]
    assert predicted["unreachable"][lost].startswith("assumed down (--assume-down) (down for")
    assert "past the host grace period" in predicted["unreachable"][lost]
    moved = {
        (pod, host)
        for verb, kind, pod, host in actions(predicted)
        if verb == "create" and kind == "ReplicationController"
    }
    assert {pod for pod, _ in moved} == {
        p
        for p, h in placement.items()
        if lost in h and p in KEYSTONES | {"frontend-0", "frontend-1"}
    }
    assert all(host in others for _, host in moved)
    losses = {(c["service"], c["host"]): c for c in predicted["endpoint_changes"]}
    assert losses[("keystone-public", lost)]["forwarder_lost"]
    for host in others:
        change = losses[("keystone-public", host)]
        assert len(change["after"]) == len(change["before"]) - 1 == 2, change
    text = cluster.diff("--assume-down", lost, "--host-grace", GRACE)
    assert f"what if {lost} were lost" in text.output
    assert f"services: Service keystone-public on {others[0]}: 3 -> 2 endpoint(s)" in text.output
    assert cluster.placement() == placement  # a what-if changes nothing

    cluster.hosts.stop(lost)
    try:
        seen = cluster.diff("--host-grace", GRACE)  # the first sight of the loss
        assert seen.exit_code == 2 and f"host {lost}: UNREACHABLE" in seen.output
        time.sleep(float(GRACE) + 0.5)
        real = json.loads(cluster.diff("--host-grace", GRACE, "-o", "json").output)
        assert actions(real) == actions(predicted)
        assert [p["message"] for p in real["problems"]] == [
            p["message"] for p in predicted["problems"]
        ]
        applied = cluster.apply("--host-grace", GRACE)
        assert applied.exit_code == 1, applied.output  # still unreachable
        after = cluster.placement(others)
        for pod, host in moved:
            assert after[pod] == [host], (pod, host, after)
    finally:
        cluster.hosts.start(lost)
        wait_for(lambda: _answers(cluster.apis[lost]), timeout=60, what=f"{lost} to answer")


def test_assume_down_of_an_unknown_host_is_a_usage_error(cluster: Cluster) -> None:
    result = cluster.diff("--assume-down", "h9")
    assert result.exit_code == 2
    assert "--assume-down h9: no such host" in result.output


def test_diff_revision_plans_a_branch_before_it_is_merged(rig: Rig) -> None:
    source = rig.copy_sample()
    git(source, "init", "-q", "-b", "main")
    git(source, "add", "-A")
    git(source, "commit", "-q", "-m", "sample")
    rig.applied()
    git(source, "checkout", "-q", "-b", "scale")
    rig.edit("frontend/controller.yaml", "replicas: 2", "replicas: 3")
    git(source, "commit", "-q", "-am", "frontend: 3")
    branch_head = git(source, "rev-parse", "HEAD")[:12]
    git(source, "checkout", "-q", "main")

    plan = rig.diff("--revision", "scale", "-o", "json")
    assert plan.exit_code == 1, plan.output
    data = json.loads(plan.output)
    assert data["revision"] == branch_head
    assert actions(data) == {("create", "ReplicationController", "frontend-2", "local")}
    assert git(source, "rev-parse", "--abbrev-ref", "HEAD") == "main"  # the tree is untouched
    assert git(source, "status", "--porcelain") == ""
    assert rig.diff().exit_code == 0  # main itself is in sync

    bare = rig.root / "bare.git"
    git(rig.root, "clone", "-q", "--bare", str(source), str(bare))
    by_url = rig.cli(
        "diff",
        "--source",
        f"file://{bare}",
        "--instance",
        rig.instance,
        "--revision",
        branch_head,
        "-o",
        "json",
    )
    assert by_url.exit_code == 1, by_url.output
    assert actions(json.loads(by_url.output)) == actions(data)

    missing = rig.diff("--revision", "no-such-branch")
    assert missing.exit_code == 2 and "--revision no-such-branch" in missing.output
    plain = rig.root / "plain"
    plain.mkdir()
    outside = rig.cli("diff", "--source", plain, "--revision", "main")
    assert outside.exit_code == 2 and "needs a git source" in outside.output
