"""Secrets (SOPS-encrypted, as the real sops writes them), ConfigMaps and claims on a real
engine: the values inside the containers, the secret in no output, no label and no file on
disk; nothing done without the key; a changed Secret rolls exactly its consumers; a claim's
data outlives its pod and its claim, until ``down --volumes``."""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.sopsfile import encrypt

from .conftest import Rig, changed_pods, wait_for
from .test_run import Service, services  # noqa: F401 - the fixture

pytestmark = pytest.mark.docker

VECTORS = Path(__file__).resolve().parents[1] / "fixtures" / "sops"
RECIPIENT = "age1l44xcng8dqj32nlv6d930qvvrny05hglzcv9qpc7kxjc6902ma4qufys29"
DATA_ROOT = Path("/var/lib/docker")


def secret_file(name: str, values: dict[str, str]) -> str:
    """A Secret encrypted for the vector's recipient, as sops writes it."""
    data = {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}
    return encrypt(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": data},
        RECIPIENT,
    )


APP = """
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data:
  MODE: blue
  app.conf: "color=blue"
---
apiVersion: v1
kind: ReplicationController
metadata: {name: envpod}
spec:
  replicas: 1
  selector: {app: envpod}
  template:
    metadata: {labels: {app: envpod}}
    spec:
      containers:
        - name: app
          image: sample/db:1.0
          command: ["sh", "-c", "exec sleep 3600"]
          envFrom: [{configMapRef: {name: settings}}]
          env:
            - {name: FROM_SOPS, valueFrom: {secretKeyRef: {name: age, key: key}}}
            - {name: DB_PASSWORD, valueFrom: {secretKeyRef: {name: db, key: password}}}
            - {name: CONF, valueFrom: {configMapKeyRef: {name: settings, key: app.conf}}}
---
apiVersion: v1
kind: Pod
metadata: {name: filepod, labels: {app: filepod}}
spec:
  containers:
    - name: app
      image: sample/db:1.0
      command: ["sh", "-c", "exec sleep 3600"]
      volumeMounts:
        - {name: creds, mountPath: /creds}
        - {name: conf, mountPath: /conf}
  volumes:
    - name: creds
      secret: {secretName: files-only, defaultMode: 0440}
    - name: conf
      configMap: {name: settings, items: [{key: app.conf, path: sub/app.conf}]}
---
apiVersion: v1
kind: Pod
metadata: {name: bystander, labels: {app: bystander}}
spec:
  containers:
    - {name: app, image: sample/db:1.0, command: ["sh", "-c", "exec sleep 3600"]}
"""


def write_tree(rig: Rig, password: str, file_secret: str) -> None:
    rig.src.mkdir(exist_ok=True)
    shutil.copy(VECTORS / "age.yaml", rig.src / "age.yaml")  # made by the real sops
    rig.write("db.yaml", secret_file("db", {"password": password}))
    rig.write("files.yaml", secret_file("files-only", {"token": file_secret}))
    rig.write("app.yaml", APP)


def with_key(rig: Rig) -> Rig:
    rig.env["SOPS_AGE_KEY_FILE"] = str(VECTORS / "age.txt")
    return rig


def files_on_disk_holding(needle: bytes) -> list[str]:
    """Files under the engine's data root, on its own file system (not the tmpfs mounts
    under it), whose bytes hold ``needle``."""
    device = DATA_ROOT.stat().st_dev
    found = []
    for directory, dirnames, filenames in os.walk(DATA_ROOT):
        dirnames[:] = [d for d in dirnames if os.lstat(os.path.join(directory, d)).st_dev == device]
        for name in filenames:
            path = os.path.join(directory, name)
            try:
                info = os.lstat(path)
                if info.st_dev != device or not os.path.isfile(path) or os.path.islink(path):
                    continue
                with open(path, "rb") as stream:
                    if needle in stream.read():
                        found.append(path)
            except OSError:
                continue
    return found


def test_secrets_reach_containers_and_nothing_else(
    rig: Rig,
    services: Callable[..., Service],  # noqa: F811
) -> None:
    shutil.rmtree(rig.src)  # not the sample: a tree of our own
    with_key(rig)
    password, file_secret = f"pw-{secrets.token_hex(8)}", f"fs-{secrets.token_hex(8)}"
    write_tree(rig, password, file_secret)

    applied = rig.applied()
    env = dict(e.split("=", 1) for e in rig.inspect("envpod-0", "app")["Config"]["Env"])
    assert env["FROM_SOPS"] == "value"  # the vector made by sops, decrypted in memory
    assert env["DB_PASSWORD"] == password and env["MODE"] == "blue"
    assert env["CONF"] == "color=blue"
    assert rig.exec("filepod", "app", ["cat", "/creds/token"]) == file_secret
    assert rig.exec("filepod", "app", ["cat", "/conf/sub/app.conf"]) == "color=blue"
    modes = rig.exec("filepod", "app", ["stat", "-c", "%a", "/creds/token", "/conf/sub/app.conf"])
    assert modes.split() == ["440", "444"]  # defaultMode, else 0444
    assert "ro," in rig.exec("filepod", "app", ["sh", "-c", "grep ' /creds ' /proc/mounts"])

    # in memory on the host: in no file of the engine's data root on disk
    assert files_on_disk_holding(file_secret.encode()) == []
    # (env values are kept by Docker in the container's config on disk: docs say so)
    assert files_on_disk_holding(password.encode())

    # a change of the secret, shown everywhere as a digest
    rig.write("db.yaml", secret_file("db", {"password": password + "-2"}))
    outputs = [applied.output]
    for fmt in ("text", "json", "markdown"):
        result = rig.diff("-o", fmt)
        assert result.exit_code == 1, result.output
        outputs.append(result.output)
    assert "<secret changed> sha256:" in outputs[1]
    for args in (("pods", "-o", "json"), ("pods", "-o", "yaml"), ("volumes", "-o", "yaml")):
        outputs.append(rig.get(*args, "--source", rig.src).output)
    outputs.append(rig.apply().output)
    labels = json.dumps([c["Labels"] for c in rig.containers()])
    assert "<secret sha256:" in labels
    rig.write("db.yaml", secret_file("db", {"password": password}))  # and back, by the service
    service = services(str(rig.src), "--log-format", "json")
    wait_for(
        lambda: (
            service.status()["sync"]["last_result"] is not None
            and not service.status()["sync"]["in_progress"]
        ),
        timeout=60,
        what="a pass of the service",
    )
    assert service.status()["sync"]["last_result"] == "ok", service.output()
    for path in ("/status", "/metrics"):
        outputs.append(service.get(path)[1])
    outputs.append(service.output())
    for secret in (password, password + "-2", file_secret):
        for text in (*outputs, labels):
            assert secret not in text


def test_without_the_key_nothing_changes_and_the_error_names_file_and_line(
    make_rig: Callable[[], Rig],
) -> None:
    rig = make_rig()
    write_tree(rig, "pw-x", "fs-x")
    for verb in (rig.apply, rig.diff):
        result = verb()
        assert result.exit_code == 2, result.output
        assert (
            f"{rig.src / 'age.yaml'}:12:3: error: Secret/age: sops.age: SOPS: cannot decrypt: "
            f"no age identity for recipient(s) {RECIPIENT}" in result.output
        )
    assert rig.containers() == []


def test_a_changed_secret_rolls_exactly_its_consumers(make_rig: Callable[[], Rig]) -> None:
    rig = with_key(make_rig())
    write_tree(rig, "pw-1", "fs-1")
    rig.applied()
    before = rig.ids()
    rig.write("files.yaml", secret_file("files-only", {"token": "fs-2"}))
    rig.applied()
    assert changed_pods(before, rig.ids()) == {"filepod"}
    assert rig.exec("filepod", "app", ["cat", "/creds/token"]) == "fs-2"
    middle = rig.ids()
    rig.write("db.yaml", secret_file("db", {"password": "pw-2"}))
    rig.applied()
    assert changed_pods(middle, rig.ids()) == {"envpod-0"}


CLAIM = """
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
"""
WRITER = """
apiVersion: v1
kind: Pod
metadata: {name: writer}
spec:
  containers:
    - name: app
      image: IMAGE
      command: ["sh", "-c", "hostname >> /data/log; exec sleep 3600"]
      volumeMounts: [{name: data, mountPath: /data}]
  volumes: [{name: data, persistentVolumeClaim: {claimName: data}}]
"""


def test_a_claims_data_outlives_its_pod_and_its_claim(make_rig: Callable[[], Rig]) -> None:
    rig = make_rig()
    rig.src.mkdir()
    rig.write("claim.yaml", CLAIM + WRITER.replace("IMAGE", "sample/db:1.0"))
    rig.applied()
    volume = f"{rig.instance}_default_data_PVC"
    assert volume in rig.volumes()
    rig.write("claim.yaml", CLAIM + WRITER.replace("IMAGE", "sample/keystone:1.0"))
    result = rig.applied()
    assert "recreate Pod/writer" in result.output
    assert rig.exec("writer", "app", ["cat", "/data/log"]).count("writer") == 2

    rig.write("claim.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    result = rig.apply("--allow-mass-prune")
    assert result.exit_code == 0, result.output
    assert f"volume {volume} on local: claim data is no longer in the manifests: kept" in (
        result.output
    )
    assert volume in rig.volumes()
    listed = rig.get("volumes", "--source", rig.src).output
    assert "data    Orphaned" in listed
    result = rig.down("--yes", "--volumes")
    assert result.exit_code == 0, result.output
    assert volume not in rig.volumes()
