"""Removal on a real engine: pruning what left the manifests (with its guard), ``down``, and
the ownership rule: what carries neither our labels nor our instance is never touched."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable

import pytest

from reconciler.core import labels as L

from .conftest import RECONCILER_BIN, SAMPLE, SAMPLE_PODS, Rig, changed_pods

pytestmark = pytest.mark.docker


def test_prune_removes_what_left_the_manifests_and_guards_mass_removal(applied: Rig) -> None:
    rig = applied
    before = rig.ids()
    data = rig.name("keystone-db", "data")
    assert rig.volumes() == [data]

    # one manifest removed: its pod and its emptyDir volume go, nothing else moves
    (rig.src / "db" / "pod.yaml").unlink()
    result = rig.diff()
    assert result.exit_code == 1
    assert (
        "- remove   Pod/keystone-db pod keystone-db: Pod keystone-db is no longer in the "
        "manifests" in result.output
    )
    rig.applied()
    after = rig.ids()
    assert changed_pods(before, after) == {"keystone-db"}
    assert "keystone-db" not in rig.pods()
    assert rig.volumes() == []
    rig.assert_converged({p: c for p, c in SAMPLE_PODS.items() if p != "keystone-db"})

    # --no-prune leaves what is no longer wanted
    (rig.src / "frontend" / "controller.yaml").unlink()
    result = rig.apply("--no-prune")
    assert result.exit_code == 0, result.output
    assert "(not pruned, --no-prune) ReplicationController/frontend pod frontend-0" in (
        result.output
    )
    assert rig.ids() == after

    # every manifest removed: refused (exit 2, nothing removed) unless --allow-mass-prune
    shutil.rmtree(rig.src)
    rig.src.mkdir()
    result = rig.apply()
    assert result.exit_code == 2, result.output
    assert "refused: this plan would remove all 5 pod(s) owned on host local" in result.stderr
    assert "--allow-mass-prune" in result.stderr
    assert rig.ids() == after
    assert all(state == "running" for state in rig.states().values())
    only_keystone = shutil.copytree(SAMPLE / "keystone", rig.root / "only-keystone")
    result = rig.apply("--max-prune", "1", source=only_keystone)  # 2 > --max-prune: refused
    assert result.exit_code == 2, result.output
    assert "more than --max-prune 1" in result.stderr
    assert rig.ids() == after

    result = rig.apply("--allow-mass-prune")
    assert result.exit_code == 0, result.output
    assert rig.containers() == []
    assert rig.volumes() == []


def test_pruning_a_pod_whose_infra_container_is_gone_still_removes_its_volume(
    rig: Rig,
) -> None:
    shutil.rmtree(rig.src / "keystone")
    shutil.rmtree(rig.src / "frontend")
    rig.applied()
    data = rig.name("keystone-db", "data")
    assert rig.volumes() == [data]
    rig.exec("keystone-db", "keystone-db", ["touch", "/var/lib/mysql/stale"])
    rig.client.containers.get(rig.name("keystone-db", "POD")).remove(force=True)

    (rig.src / "db" / "pod.yaml").unlink()
    rig.applied("--allow-mass-prune")
    assert rig.workload() == []  # the db Service's forwarder stays: its manifest does
    assert rig.volumes() == [], "the pruned pod's emptyDir volume was left behind"


FOREIGN_COMMAND = ["sleep", "3600"]


def test_foreign_and_other_instance_containers_are_never_touched(
    make_rig: Callable[[], Rig],
) -> None:
    ours = make_rig()
    ours.copy_sample()
    theirs = make_rig()
    (theirs.src / "db").mkdir(parents=True)
    shutil.copy(SAMPLE / "db" / "pod.yaml", theirs.src / "db" / "pod.yaml")
    theirs.applied()
    their_ids = theirs.ids()
    assert len(their_ids) == 2

    # no labels at all, named exactly as our pod keystone-9's infra container would be
    bare = ours.client.containers.run(
        "sample/db:1.0", FOREIGN_COMMAND, name=ours.name("keystone-9", "POD"), detach=True
    )
    ours.track(bare.id)
    # our instance label and pod labels but not our managed-by: still not ours
    lookalike = ours.client.containers.run(
        "sample/db:1.0",
        FOREIGN_COMMAND,
        name=ours.name("keystone-8", "POD"),
        detach=True,
        labels={
            L.INSTANCE: ours.instance,
            L.POD: "keystone-8",
            L.POD_NAMESPACE: "default",
            L.OWNER_KIND: "ReplicationController",
            L.OWNER_NAME: "keystone",
            L.ROLE: L.ROLE_INFRA,
            L.CONTAINER: "POD",
            L.POD_LABELS: '{"app":"keystone","name":"keystone"}',
        },
    )
    ours.track(lookalike.id)
    # no labels, and in the way: named as pod keystone-2's memcached container will be
    clash = ours.client.containers.run(
        "sample/db:1.0", FOREIGN_COMMAND, name=ours.name("keystone-2", "memcached"), detach=True
    )
    ours.track(clash.id)
    foreign = {bare.id, lookalike.id, clash.id}

    def untouched() -> None:
        for container_id in foreign:
            state = ours.api.inspect_container(container_id)["State"]
            assert state["Running"], container_id
        assert theirs.ids() == their_ids
        assert set(theirs.states().values()) == {"running"}

    result = ours.apply()
    assert result.exit_code == 1, result.output
    assert "keystone-9" not in result.output and "keystone-8" not in result.output
    [failed] = [line for line in result.output.splitlines() if "FAILED" in line]
    clash_name = ours.name("keystone-2", "memcached")
    assert "pod keystone-2" in failed, failed
    assert f"container {clash_name} on host local exists and does not carry this " in failed
    # keystone-2 could not be completed, so nothing of it stays: no half-made pod
    expected = {p: c for p, c in SAMPLE_PODS.items() if p != "keystone-2"}
    assert ours.pods() == expected
    assert set(ours.states().values()) == {"running"}
    untouched()
    listed = ours.get("pods", "-o", "json")
    names = [item["metadata"]["name"] for item in json.loads(listed.output)["items"]]
    assert sorted(names) == sorted(expected)

    # prune (keystone left the manifests) and the mass-prune guard count only our pods
    shutil.rmtree(ours.src / "keystone")
    result = ours.apply()
    assert result.exit_code == 0, result.output
    assert sorted(ours.pods()) == ["frontend-0", "frontend-1", "keystone-db"]
    untouched()

    result = ours.down("--yes")
    assert result.exit_code == 0, result.output
    assert ours.containers() == []
    untouched()
    result = ours.down("--yes")
    assert result.exit_code == 0 and "nothing to remove" in result.output


def test_down_removes_what_matches_and_needs_yes_off_a_terminal(applied: Rig) -> None:
    rig = applied
    before = rig.ids()

    # without --yes and without a terminal: refused, nothing removed (in process and as a
    # real process whose stdin is not a tty)
    result = rig.down()
    assert result.exit_code == 2, result.output
    assert "refusing to remove without --yes" in result.stderr
    process = subprocess.run(
        [RECONCILER_BIN, "down", "--instance", rig.instance, "-l", "app=frontend"],
        env=rig.process_env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert process.returncode == 2, process.stdout + process.stderr
    assert "refusing to remove without --yes" in process.stderr
    assert rig.ids() == before

    result = rig.down("-l", "app=frontend", "--yes")
    assert result.exit_code == 0, result.output
    assert changed_pods(before, rig.ids()) == {"frontend-0", "frontend-1"}
    assert sorted(rig.pods()) == ["keystone-0", "keystone-1", "keystone-2", "keystone-db"]
    assert rig.ids() == {n: i for n, i in before.items() if "_frontend-" not in n}

    result = rig.down("--yes")
    assert result.exit_code == 0, result.output
    assert rig.containers() == []
    assert rig.volumes() == []
    assert rig.api.containers(all=True, filters={"label": f"{L.INSTANCE}={rig.instance}"}) == []


def test_down_leaves_a_foreign_container_named_like_the_state_marker(rig: Rig) -> None:
    """The revision marker is removed by name; a foreign container with that name is not ours."""
    marker = f"{rig.instance}_reconciler_state"
    foreign = rig.client.containers.create("sample/db:1.0", FOREIGN_COMMAND, name=marker)
    rig.track(foreign.id)
    result = rig.down("--yes")
    assert result.exit_code == 0, result.output
    assert "does not carry this instance's labels" in result.output
    assert rig.api.inspect_container(foreign.id)["Name"] == f"/{marker}"
