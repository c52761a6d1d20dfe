"""``apply`` on a real engine: what the containers look like, a no-op second pass, pods that
share localhost, invalid manifests, and an image that must not be pulled."""

from __future__ import annotations

import json
import os
import re
import subprocess
import urllib.request

import git
import pytest

from reconciler.apply.converge import apply_plan, connect, load_source, make_plan, observe
from reconciler.core import labels as L
from reconciler.desire.settings import DEFAULT_INFRA_IMAGE
from reconciler.source.hosts import load_hosts

from .conftest import RECONCILER_BIN, SAMPLE_PODS, Rig, free_port

pytestmark = pytest.mark.docker

MiB = 1024 * 1024

PROBE_POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: probe
  labels:
    app: probe
spec:
  volumes:
    - name: scratch
      emptyDir: {{}}
    - name: shared
      hostPath:
        path: {host_dir}
  containers:
    - name: web
      image: sample/frontend:1.0
      command: ["sh", "-c"]
      args:
        - echo "probe $(hostname)" > /www/index.html && exec httpd -f -p 8080 -h /www
      workingDir: /scratch
      env:
        - name: GREETING
          value: hello world
      ports:
        - containerPort: 8080
          hostPort: {port}
      resources:
        requests:
          cpu: 100m
          memory: 16Mi
        limits:
          cpu: 300m
          memory: 48Mi
      volumeMounts:
        - name: scratch
          mountPath: /scratch
        - name: shared
          mountPath: /shared
"""


def _env(info: dict[str, object]) -> dict[str, str]:
    config = info["Config"]
    assert isinstance(config, dict)
    return dict(item.split("=", 1) for item in config["Env"] or [])


def test_apply_creates_every_container_as_the_manifests_say(rig: Rig) -> None:
    host_dir = rig.root / "shared"
    host_dir.mkdir()
    port = free_port()
    rig.write("probe/pod.yaml", PROBE_POD.format(host_dir=host_dir, port=port))
    repo = git.Repo.init(rig.src)  # a source with a revision (a scratch repository in tmp)
    repo.index.add([str(p.relative_to(rig.src)) for p in rig.src.rglob("*.yaml")])
    actor = git.Actor("it", "it@example.invalid")
    revision = repo.index.commit("manifests", author=actor, committer=actor).hexsha[:12]
    # the probe's hostPath and hostPort need the operator's consent, for every verb
    rig.env["RECONCILER_POLICY"] = "privileged"

    result = rig.apply()
    assert result.exit_code == 0, result.output
    assert f"revision {revision}: 10 create" in result.output  # 7 pods, 3 forwarders
    expected = {**SAMPLE_PODS, "probe": ["POD", "web"]}
    rig.assert_converged(expected)

    # labels: ownership, owner, pod, one spec hash per pod, the source revision
    owners = {
        "frontend": ("ReplicationController", "frontend"),
        "keystone": ("ReplicationController", "keystone"),
        "keystone-db": ("Pod", "keystone-db"),
        "probe": ("Pod", "probe"),
    }
    hashes: dict[str, str] = {}
    for pod, names in expected.items():
        kind, owner = owners[pod if pod in owners else pod.rsplit("-", 1)[0]]
        pod_hashes = set()
        for container in names:
            labels = rig.inspect(pod, container)["Config"]["Labels"]
            assert labels[L.MANAGED_BY] == "reconciler"
            assert labels[L.INSTANCE] == rig.instance
            assert labels[L.OWNER_KIND] == kind
            assert labels[L.OWNER_NAME] == owner
            assert labels[L.POD] == pod
            assert labels[L.CONTAINER] == container
            assert labels[L.ROLE] == ("infra" if container == "POD" else "app")
            assert labels[L.REVISION] == revision
            assert re.fullmatch(r"[0-9a-f]{16}", labels[L.SPEC_HASH])
            pod_hashes.add(labels[L.SPEC_HASH])
            if kind == "ReplicationController":
                assert labels[L.REPLICA] == pod.rsplit("-", 1)[1]
        assert len(pod_hashes) == 1, f"{pod} has several spec hashes: {pod_hashes}"
        hashes[pod] = pod_hashes.pop()
    assert len(set(hashes.values())) == len(hashes)  # each pod its own hostname, own hash

    # app containers join their infra container's namespaces; hostname is the pod name
    for pod, names in expected.items():
        infra = rig.inspect(pod, "POD")
        assert infra["Config"]["Hostname"] == pod
        assert infra["Config"]["Image"] == os.environ.get(
            "RECONCILER_INFRA_IMAGE", DEFAULT_INFRA_IMAGE
        )
        for container in names[1:]:
            host_config = rig.inspect(pod, container)["HostConfig"]
            assert host_config["NetworkMode"] == f"container:{infra['Id']}"
            assert host_config["IpcMode"] == f"container:{infra['Id']}"

    # keystone: env, command/args, cpu and memory limits, both containers
    for i in range(3):
        keystone = rig.inspect(f"keystone-{i}", "keystone")
        env = _env(keystone)
        own = {k: env[k] for k in env if k != "PATH" and "_SERVICE_" not in k}
        own = {k: v for k, v in own.items() if not re.match(r"[A-Z_]+_PORT(_\d+_TCP.*)?$", k)}
        assert own == {
            "MYSQL_USER": "keystone",
            "MYSQL_PASSWORD": "keystone",
            "MYSQL_DATABASE": "keystone",
            "ADMIN_TOKEN": "token123",
        }
        assert keystone["Config"]["Image"] == "sample/keystone:1.0"
        assert keystone["Config"]["Entrypoint"] == ["sh", "-c"]
        assert keystone["Config"]["Cmd"] == [
            'mkdir -p /www && echo "keystone $(hostname)" > /www/index.html '
            "&& exec httpd -f -p 5000 -h /www"
        ]
        assert keystone["HostConfig"]["NanoCpus"] == 500_000_000
        assert keystone["HostConfig"]["Memory"] == 64 * MiB
        assert keystone["HostConfig"]["RestartPolicy"]["Name"] == "always"
        memcached = rig.inspect(f"keystone-{i}", "memcached")
        assert memcached["Config"]["Image"] == "sample/memcached:1.0"
        assert memcached["HostConfig"]["NanoCpus"] == 0
        assert memcached["HostConfig"]["Memory"] == 32 * MiB

    # frontend: workingDir, requests as shares and reservation
    for i in range(2):
        web = rig.inspect(f"frontend-{i}", "web")
        assert web["Config"]["WorkingDir"] == "/www"
        assert web["HostConfig"]["NanoCpus"] == 250_000_000
        assert web["HostConfig"]["Memory"] == 32 * MiB
        assert web["HostConfig"]["MemoryReservation"] == 16 * MiB
        assert web["HostConfig"]["CpuShares"] == 102

    # db: the emptyDir is a Docker volume of the instance, mounted where the manifest says
    db = rig.inspect("keystone-db", "keystone-db")
    assert _env(db)["MYSQL_PASSWORD"] == "keystone"
    assert db["HostConfig"]["NanoCpus"] == 500_000_000
    assert db["HostConfig"]["Memory"] == 64 * MiB
    data = rig.name("keystone-db", "data")
    assert data in rig.volumes()
    mounts = {m["Destination"]: m for m in db["Mounts"]}
    assert mounts["/var/lib/mysql"]["Type"] == "volume"
    assert mounts["/var/lib/mysql"]["Name"] == data

    # probe: published hostPort that answers, emptyDir + hostPath, env, workingDir
    infra = rig.inspect("probe", "POD")
    assert infra["HostConfig"]["PortBindings"] == {  # on the host's address, not every one
        "8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]
    }
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
        assert response.read().decode() == "probe probe\n"
    web = rig.inspect("probe", "web")
    assert _env(web)["GREETING"] == "hello world"
    assert web["Config"]["WorkingDir"] == "/scratch"
    assert web["HostConfig"]["NanoCpus"] == 300_000_000
    assert web["HostConfig"]["Memory"] == 48 * MiB
    mounts = {m["Destination"]: m for m in web["Mounts"]}
    assert mounts["/scratch"]["Type"] == "volume"
    assert mounts["/scratch"]["Name"] == rig.name("probe", "scratch")
    assert rig.name("probe", "scratch") in rig.volumes()
    assert mounts["/shared"]["Type"] == "bind"
    assert mounts["/shared"]["Source"] == str(host_dir)
    assert mounts["/shared"]["RW"] is True
    rig.exec("probe", "web", ["sh", "-c", "echo written-in-the-pod > /shared/out.txt"])
    assert (host_dir / "out.txt").read_text() == "written-in-the-pod\n"
    rig.exec("probe", "web", ["sh", "-c", "echo scratch > /scratch/x && cat /scratch/x"])


def test_second_apply_is_a_no_op_with_one_read_and_no_write(applied: Rig) -> None:
    rig = applied
    before = rig.ids()
    result = rig.apply()
    assert result.exit_code == 0, result.output
    assert "in sync" in result.output
    assert "applied 0 of 0 action(s)" in result.output
    assert rig.ids() == before

    # the same pass in process, counting the Docker API calls it makes
    hosts = load_hosts(None, os.environ)
    runtimes = connect(hosts, rig.instance)
    validation, _ = load_source([str(rig.src)])
    assert validation.valid
    live = observe(runtimes)
    settings = rig.settings()
    _, the_plan = make_plan(validation.manifests, hosts, live, settings)
    assert the_plan.in_sync, [a.as_dict() for a in the_plan.actions]
    for name, runtime in runtimes.items():
        assert runtime.calls == 1, f"{name}: {runtime.calls} calls for a no-op observe+plan"
        assert runtime.writes == 0
    report = apply_plan(the_plan, runtimes)
    assert report.results == []
    assert all(runtime.writes == 0 for runtime in runtimes.values())
    assert rig.ids() == before

    result = rig.diff("-o", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["in_sync"] is True
    # and the installed command agrees, in a process of its own
    process = subprocess.run(
        [RECONCILER_BIN, "diff", "--source", rig.src, "--instance", rig.instance],
        env=rig.process_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert process.returncode == 0, process.stdout + process.stderr
    assert "in sync" in process.stdout


def test_the_containers_of_a_pod_share_localhost_and_hostname(applied: Rig) -> None:
    rig = applied
    for i in range(3):
        pod = f"keystone-{i}"
        page = rig.exec(pod, "keystone", ["wget", "-qO-", "http://127.0.0.1:11211/"])
        assert page == f"memcached {pod}\n"
        assert rig.exec(pod, "keystone", ["hostname"]).strip() == pod
        assert rig.exec(pod, "memcached", ["hostname"]).strip() == pod
        assert rig.exec(pod, "POD", ["hostname"]).strip() == pod
    # and a pod does not see another pod's localhost
    box = rig.client.containers.get(rig.name("frontend-0", "web"))
    code, _ = box.exec_run(["timeout", "3", "wget", "-qO-", "http://127.0.0.1:11211/"])
    assert code != 0


INVALID_POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: broken
spec:
  contianers:
    - name: x
      image: sample/db:1.0
"""

INVALID_RC = """\
apiVersion: v1
kind: ReplicationController
metadata:
  name: bad-rc
spec:
  replicas: -1
  selector:
    app: bad
  template:
    metadata:
      labels:
        app: bad
    spec:
      containers:
        - name: c
          image: sample/db:1.0
          imagePullPolicy: sometimes
          resources:
            limits:
              memory: lots
"""


def test_invalid_manifests_apply_nothing_and_say_where(rig: Rig) -> None:
    broken = rig.write("broken/pod.yaml", INVALID_POD)
    rig.write("broken/rc.yaml", INVALID_RC)
    validated = rig.cli("validate", rig.src)
    assert validated.exit_code == 1, validated.output
    lines = validated.output.splitlines()
    diagnostics = lines[:-1]
    assert "invalid" in lines[-1]
    assert any(line.startswith(f"{broken}:6:3: error:") for line in diagnostics), diagnostics
    assert sum(": error: " in line for line in diagnostics) >= 4, diagnostics

    for verb in ("apply", "diff"):
        result = rig.apply() if verb == "apply" else rig.diff()
        assert result.exit_code == 2, result.output
        printed = result.stderr.splitlines()
        assert printed[:-1] == diagnostics
        assert printed[-1].endswith("nothing applied")
        assert result.stdout == ""
    assert rig.containers() == []
    assert rig.volumes() == []


GHOST_POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: ghost
spec:
  volumes:
    - name: cache
      emptyDir: {{}}
  containers:
    - name: present
      image: sample/db:1.0
      command: ["sleep", "3600"]
      volumeMounts:
        - name: cache
          mountPath: /cache
    - name: absent
      image: {image}
      imagePullPolicy: Never
"""


def test_image_never_pulled_fails_only_its_pod(rig: Rig) -> None:
    image = f"it-absent/{rig.instance}:1"
    path = rig.write("ghost/pod.yaml", GHOST_POD.format(image=image))
    result = rig.apply()
    assert result.exit_code == 1, result.output
    failed = [line for line in result.output.splitlines() if "FAILED" in line]
    assert len(failed) == 1, result.output
    assert "Pod/ghost pod ghost" in failed[0]
    assert "ErrImageNeverPull" in failed[0]
    assert image in failed[0]
    assert f"({path}:" in failed[0]  # the manifest's file:line
    assert "applied 9 of 10 action(s), 1 failed" in result.output  # 3 are forwarders
    # the other pods run; nothing of ghost is left behind, not even its volume
    assert rig.pods() == SAMPLE_PODS
    assert rig.containers(f"{L.POD}=ghost") == []
    assert rig.volumes() == [rig.name("keystone-db", "data")]
    assert all(state == "running" for state in rig.states().values())
    # the next diff still wants it
    again = rig.diff()
    assert again.exit_code == 1
    assert "create   Pod/ghost pod ghost" in again.output
