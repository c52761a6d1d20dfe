"""Drift on a real engine: containers killed or removed behind our back, manifests edited
(image, env: exactly the affected pods are recreated, secrets never printed), and an apply
that crashed half-way."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from reconciler.apply.converge import connect, load_source, make_plan, observe
from reconciler.core import labels as L
from reconciler.core.redact import marker_digest, secret_marker
from reconciler.desire.settings import Settings
from reconciler.source.hosts import load_hosts

from .conftest import RECONCILER_BIN, SAMPLE_PODS, Rig, changed_pods, wait_for

pytestmark = pytest.mark.docker


def test_killed_removed_and_infra_less_containers_are_restored(applied: Rig) -> None:
    rig = applied
    before = rig.ids()

    # killed: a start, same container
    rig.client.containers.get(rig.name("keystone-1", "keystone")).kill()
    wait_for(lambda: rig.states()[rig.name("keystone-1", "keystone")] == "exited", what="exit")
    result = rig.diff()
    assert result.exit_code == 1, result.output
    assert "> start    ReplicationController/keystone pod keystone-1 container keystone" in (
        result.output
    )
    assert "1 start" in result.output
    result = rig.apply()
    assert result.exit_code == 0, result.output
    assert rig.states()[rig.name("keystone-1", "keystone")] == "running"
    assert rig.ids() == before
    rig.exec("keystone-1", "keystone", ["wget", "-qO-", "http://127.0.0.1:5000/"])

    # an app container removed: created again, inside the same pod
    rig.client.containers.get(rig.name("frontend-0", "web")).remove(force=True)
    result = rig.diff()
    assert result.exit_code == 1, result.output
    assert "+ create   ReplicationController/frontend pod frontend-0 container web" in (
        result.output
    )
    result = rig.apply()
    assert result.exit_code == 0, result.output
    after = rig.ids()
    assert changed_pods(before, after) == {"frontend-0"}
    assert after[rig.name("frontend-0", "POD")] == before[rig.name("frontend-0", "POD")]
    web = rig.inspect("frontend-0", "web")
    assert web["State"]["Running"]
    assert web["HostConfig"]["NetworkMode"] == f"container:{after[rig.name('frontend-0', 'POD')]}"
    before = after

    # the infra container removed: the whole pod is recreated
    rig.client.containers.get(rig.name("keystone-2", "POD")).remove(force=True)
    result = rig.diff()
    assert result.exit_code == 1, result.output
    assert (
        "~ recreate ReplicationController/keystone pod keystone-2: infra container is missing"
        in result.output
    )
    result = rig.apply()
    assert result.exit_code == 0, result.output
    after = rig.ids()
    assert changed_pods(before, after) == {"keystone-2"}
    assert all(
        after[rig.name("keystone-2", c)] != before.get(rig.name("keystone-2", c))
        for c in ("keystone", "memcached")
    )
    rig.assert_converged()
    page = rig.exec("keystone-2", "keystone", ["wget", "-qO-", "http://127.0.0.1:11211/"])
    assert page == "memcached keystone-2\n"


SECRETS = ("pw-NEW-7781", "hush-sec-1", "hush-key-2", "tok-NEW-4242")


def _outputs(rig: Rig) -> dict[str, str]:
    """diff in its three formats; each must exit 1 (changes pending)."""
    outputs = {}
    for fmt in ("text", "json", "markdown"):
        result = rig.diff("-o", fmt)
        assert result.exit_code == 1, result.output
        outputs[fmt] = result.output
    return outputs


def _assert_masked(outputs: dict[str, str]) -> None:
    for fmt, text in outputs.items():
        for secret in SECRETS:
            assert secret not in text, f"{secret} printed in {fmt} output"
        assert "<secret" in text, fmt


def test_env_and_image_edits_recreate_exactly_the_affected_pods(applied: Rig) -> None:
    rig = applied
    before = rig.ids()

    # env edit of the db pod: one pod recreated, field-level diff, secrets masked
    rig.edit(
        "db/pod.yaml",
        "        - name: MYSQL_USER\n          value: keystone\n"
        "        - name: MYSQL_PASSWORD\n          value: keystone\n",
        "        - name: MYSQL_USER\n          value: dbadmin\n"
        "        - name: MYSQL_PASSWORD\n          value: pw-NEW-7781\n"
        "        - name: SESSION_SECRET\n          value: hush-sec-1\n"
        "        - name: API_KEY\n          value: hush-key-2\n",
    )
    outputs = _outputs(rig)
    _assert_masked(outputs)
    plan = json.loads(outputs["json"])
    assert [(c["action"], c["pod"]) for c in plan["changes"]] == [("recreate", "keystone-db")]
    fields = {f["path"]: (f["old"], f["new"]) for f in plan["changes"][0]["fields"]}
    base = "containers[keystone-db].env."
    old_pw, new_pw = secret_marker("keystone"), secret_marker("pw-NEW-7781")
    assert fields == {
        base + "MYSQL_USER": ("keystone", "dbadmin"),
        base + "MYSQL_PASSWORD": (old_pw, new_pw),
        base + "SESSION_SECRET": (None, secret_marker("hush-sec-1")),
        base + "API_KEY": (None, secret_marker("hush-key-2")),
    }
    assert f'{base}MYSQL_USER: "keystone" -> "dbadmin"' in outputs["text"]
    assert (
        f"{base}MYSQL_PASSWORD: <secret changed> {marker_digest(old_pw)} -> "
        f"{marker_digest(new_pw)}" in outputs["text"]
    )
    assert f'`{base}API_KEY: null -> "{secret_marker("hush-key-2")}"`' in outputs["markdown"]
    result = rig.apply()
    assert result.exit_code == 0, result.output
    for secret in SECRETS:
        assert secret not in result.output
    after = rig.ids()
    assert changed_pods(before, after) == {"keystone-db"}
    env = rig.inspect("keystone-db", "keystone-db")["Config"]["Env"]
    assert {"MYSQL_USER=dbadmin", "MYSQL_PASSWORD=pw-NEW-7781", "API_KEY=hush-key-2"} <= set(env)
    rig.assert_converged()
    before = after

    # image edit (a new image made from busybox) and a token: the three keystone pods only
    made = rig.cli("images", "busybox", "sample/keystone:2.0")
    assert made.exit_code == 0, made.output
    rig.client.api.inspect_image("sample/keystone:2.0")
    rig.edit("keystone/controller.yaml", "sample/keystone:1.0", "sample/keystone:2.0")
    rig.edit("keystone/controller.yaml", "value: token123", "value: tok-NEW-4242")
    outputs = _outputs(rig)
    _assert_masked(outputs)
    plan = json.loads(outputs["json"])
    assert sorted((c["action"], c["pod"]) for c in plan["changes"]) == [
        ("recreate", f"keystone-{i}") for i in range(3)
    ]
    for change in plan["changes"]:
        fields = {f["path"]: (f["old"], f["new"]) for f in change["fields"]}
        assert fields == {
            "containers[keystone].env.ADMIN_TOKEN": (
                secret_marker("token123"),
                secret_marker("tok-NEW-4242"),
            ),
            "containers[keystone].image": ("sample/keystone:1.0", "sample/keystone:2.0"),
        }
    assert (
        'containers[keystone].image: "sample/keystone:1.0" -> "sample/keystone:2.0"'
        in outputs["text"]
    )
    assert (
        "| recreate | ReplicationController/default/keystone | keystone-0 |" in outputs["markdown"]
    )
    result = rig.apply()
    assert result.exit_code == 0, result.output
    after = rig.ids()
    assert changed_pods(before, after) == {"keystone-0", "keystone-1", "keystone-2"}
    for i in range(3):
        keystone = rig.inspect(f"keystone-{i}", "keystone")
        assert keystone["Config"]["Image"] == "sample/keystone:2.0"
        assert "ADMIN_TOKEN=tok-NEW-4242" in keystone["Config"]["Env"]
    rig.assert_converged()


def _settings(rig: Rig) -> Settings:
    return rig.settings()


def test_apply_after_a_crash_between_infra_and_app_containers_converges(rig: Rig) -> None:
    """A crash left pods half-made: infra only, or infra and one of two app containers."""
    hosts = load_hosts(None, os.environ)
    runtimes = connect(hosts, rig.instance)
    validation, _ = load_source([str(rig.src)])
    desired, _ = make_plan(validation.manifests, hosts, observe(runtimes), _settings(rig))
    pods = {p.name: p for p in desired.pods}
    runtime = runtimes[pods["keystone-db"].host]
    db, keystone = pods["keystone-db"], pods["keystone-1"]
    runtime.ensure_infra_image(db.containers[0].image)
    runtime._create_volumes(db)
    db_infra = runtime._create_infra(db)
    keystone_infra = runtime._create_infra(keystone)
    runtime.ensure_image(keystone.containers[1].image, "IfNotPresent")
    keystone_app = runtime._create_app(keystone, keystone.containers[1], keystone_infra)
    assert rig.pods() == {"keystone-1": ["POD", "keystone"], "keystone-db": ["POD"]}

    result = rig.diff()
    assert result.exit_code == 1
    assert "pod keystone-db container keystone-db: container missing" in result.output
    assert "pod keystone-1 container memcached: container missing" in result.output
    result = rig.apply()
    assert result.exit_code == 0, result.output
    rig.assert_converged()
    ids = rig.ids()
    assert ids[rig.name("keystone-db", "POD")] == db_infra
    assert ids[rig.name("keystone-1", "POD")] == keystone_infra
    assert ids[rig.name("keystone-1", "keystone")] == keystone_app
    assert rig.volumes() == [rig.name("keystone-db", "data")]


def test_apply_killed_mid_way_then_rerun_leaves_no_duplicate_or_orphan(rig: Rig) -> None:
    process = subprocess.Popen(
        [
            RECONCILER_BIN,
            "apply",
            "--source",
            rig.src,
            "--instance",
            rig.instance,
            "--grace-period",
            "0",
            "--concurrency",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=rig.process_env,
    )
    try:
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            if rig.api.containers(all=True, filters={"label": f"{L.INSTANCE}={rig.instance}"}):
                break
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, "apply finished before it could be killed"
    partial = rig.pods()
    assert partial and partial != SAMPLE_PODS, partial

    result = rig.apply()
    assert result.exit_code == 0, result.output
    rig.assert_converged()
    assert rig.volumes() == [rig.name("keystone-db", "data")]
    again = rig.apply()
    assert again.exit_code == 0 and "applied 0 of 0" in again.output, again.output
