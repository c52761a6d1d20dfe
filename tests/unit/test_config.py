"""Secrets, ConfigMaps and claims in pods, without Docker: what containers get, what specs,
labels and plans keep (digests, never values), who rolls when a Secret changes, where
claims put pods, and the Kubernetes defaults for nodePort 0 and a volume with no source."""

from __future__ import annotations

import base64
import json

from reconciler.apply.converge import converge, make_plan, observe
from reconciler.check.validate import validate
from reconciler.core import labels as L
from reconciler.core.model import HostState, LiveVolume, Manifest
from reconciler.desire.compute import compute_desired
from reconciler.desire.settings import Settings
from reconciler.engine import translate as T
from reconciler.plan.model import Verb
from reconciler.render.plans import plan_json, plan_markdown, plan_text_lines
from reconciler.source.hosts import Host
from reconciler.source.load import parse_text

from .memory_runtime import MemoryHost

SETTINGS = Settings(instance="mem", forwarder_image="reconciler/forwarder:test")
PASSWORD = "hunter2-7f3a9c"


def manifests(text: str) -> list[Manifest]:
    result = validate(parse_text(text, "m.yaml"))
    assert result.valid, [f"{d.location}: {d.message}" for d in result.errors]
    return list(result.manifests)


def secret(password: str = PASSWORD) -> str:
    encoded = base64.b64encode(password.encode()).decode()
    return f"""
apiVersion: v1
kind: Secret
metadata: {{name: db}}
data: {{password: {encoded}}}
stringData: {{user: app}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: settings}}
data: {{MODE: blue, app.conf: "color=blue"}}
---
"""


def consumer(name: str) -> str:
    return f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: {name}}}}}
spec:
  containers:
    - name: app
      image: web:1
      envFrom: [{{configMapRef: {{name: settings}}}}]
      env:
        - {{name: DB_PASSWORD, valueFrom: {{secretKeyRef: {{name: db, key: password}}}}}}
        - {{name: LITERAL_TOKEN, value: tok-123456}}
        - {{name: NAME, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}
      volumeMounts: [{{name: creds, mountPath: /creds}}]
  volumes:
    - name: creds
      secret: {{secretName: db, items: [{{key: password, path: sub/pw}}]}}
---
"""


BYSTANDER = """
apiVersion: v1
kind: Pod
metadata: {name: other}
spec:
  containers: [{name: app, image: web:1, env: [{name: MODE, value: green}]}]
---
"""


def cluster() -> tuple[list[Host], dict[str, MemoryHost]]:
    host = Host("h1", "tcp://10.231.0.11:2375", "10.231.0.11")
    return [host], {"h1": MemoryHost("h1", instance="mem", images=("web:1",))}


def apply(text: str, hosts: list[Host], runtimes: dict[str, MemoryHost]) -> list[str]:
    found = manifests(text)
    live = observe(runtimes)
    _, the_plan = make_plan(found, hosts, live, SETTINGS)
    before = {h: len(r.calls) for h, r in runtimes.items()}
    done = converge(the_plan, found, hosts, SETTINGS, runtimes)
    assert done.report.ok, [r.error for r in done.report.failed]
    return [c for h, r in runtimes.items() for c in r.calls[before[h] :]]


def test_containers_get_the_values_and_files_get_their_bytes_and_modes() -> None:
    hosts, runtimes = cluster()
    apply(secret() + consumer("web"), hosts, runtimes)
    host = runtimes["h1"]
    env = host.environments["mem_default_web_app"]
    assert env["DB_PASSWORD"] == PASSWORD and env["MODE"] == "blue" and env["NAME"] == "web"
    assert env["app.conf"] == "color=blue"  # printable: a valid name, as Kubernetes has it
    assert host.files["mem_default_web_creds"] == {"sub/pw": (PASSWORD.encode(), 0o444)}


def test_no_label_and_no_plan_holds_a_secret_value() -> None:
    hosts, runtimes = cluster()
    apply(secret() + consumer("web"), hosts, runtimes)
    labels = json.dumps([c["Labels"] for c in runtimes["h1"].containers.values()])
    assert PASSWORD not in labels and "tok-123456" not in labels
    assert "<secret sha256:" in labels
    found = manifests(secret("changed-" + PASSWORD) + consumer("web"))
    live = observe(runtimes)
    _, the_plan = make_plan(found, hosts, live, SETTINGS)
    for text in (
        plan_json(the_plan, ""),
        plan_markdown(the_plan, ""),
        "\n".join(t for t, _ in plan_text_lines(the_plan, "")),
    ):
        assert PASSWORD not in text and "tok-123456" not in text
    text = "\n".join(t for t, _ in plan_text_lines(the_plan, ""))
    assert "containers[app].env.DB_PASSWORD: <secret changed> sha256:" in text


def test_a_changed_secret_rolls_exactly_its_consumers() -> None:
    hosts, runtimes = cluster()
    apply(secret() + consumer("a") + consumer("b") + BYSTANDER, hosts, runtimes)
    found = manifests(secret("new-" + PASSWORD) + consumer("a") + consumer("b") + BYSTANDER)
    _, the_plan = make_plan(found, hosts, observe(runtimes), SETTINGS)
    assert {(a.verb, a.pod) for a in the_plan.actions} == {
        (Verb.RECREATE, "a"),
        (Verb.RECREATE, "b"),
    }
    same = manifests(secret() + consumer("a") + consumer("b") + BYSTANDER)
    _, unchanged = make_plan(same, hosts, observe(runtimes), SETTINGS)
    assert unchanged.in_sync


def test_pods_without_config_keep_their_spec_hash() -> None:
    """The hashes main computed for these pods: an upgrade must not recreate them."""
    text = (
        BYSTANDER
        + """
apiVersion: v1
kind: ReplicationController
metadata: {name: web}
spec:
  replicas: 1
  selector: {app: web}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: web:1
          env: [{name: DB_PASSWORD, value: pw}, {name: URL, value: "http://u:p@x/"}]
          args: ["--password=pw"]
          volumeMounts: [{name: data, mountPath: /data}]
      volumes: [{name: data, emptyDir: {}}]
"""
    )
    desired = compute_desired(manifests(text), cluster()[0], {}, Settings())
    hashes = {p.name: p.spec_hash for p in desired.pods}
    assert hashes == {"other": "36458fdabe0f6c1f", "web-0": "e9223bc9bcf05fbe"}
    web = next(p for p in desired.pods if p.name == "web-0")
    label = T.container_labels(web, web.containers[0], "default", "")[L.SPEC]
    assert "pw" not in json.loads(label)["spec"]["containers"][0]["env"][0]["value"]
    assert "u:p@" not in label and "--password=pw" not in label


def test_the_markdown_report_cannot_be_broken_out_of() -> None:
    hosts, runtimes = cluster()
    apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers:\n"
        "    - {name: app, image: web:1, env: [{name: MODE, value: a}]}\n",
        hosts,
        runtimes,
    )
    evil = "x`` </details><img src=x onerror=alert(1)> | ``"
    changed = (
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers:\n"
        f"    - {{name: app, image: web:1, env: [{{name: MODE, value: {json.dumps(evil)}}}]}}\n"
    )
    _, the_plan = make_plan(manifests(changed), hosts, observe(runtimes), SETTINGS)
    markdown = plan_markdown(the_plan, "r`1")
    line = next(x for x in markdown.splitlines() if x.startswith("  - ") and "env.MODE" in x)
    fence = "```"  # one more backtick than the longest run in the value
    assert line.startswith(f"  - {fence}") and line.endswith(fence)
    assert line[len("  - ") + 3 : -3].count(fence) == 0
    assert [x for x in markdown.splitlines() if "</details>" in x and "```" not in x] == [
        "</details>"
    ]
    assert "### reconciler diff for ``r`1``" in markdown


def test_claims_put_their_pods_on_the_host_that_holds_the_volume() -> None:
    text = """
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: v1
kind: Pod
metadata: {name: db}
spec:
  containers: [{name: db, image: web:1, volumeMounts: [{name: d, mountPath: /d}]}]
  volumes: [{name: d, persistentVolumeClaim: {claimName: data}}]
"""
    hosts = [Host("h1", "tcp://a:1", "10.0.0.1"), Host("h2", "tcp://b:1", "10.0.0.2")]
    volume = LiveVolume(
        "mem_default_data_PVC",
        "h2",
        {
            L.MANAGED_BY: L.MANAGED_BY_VALUE,
            L.INSTANCE: "mem",
            L.CLAIM: "data",
            L.CLAIM_NAMESPACE: "default",
        },
    )
    live = {"h1": HostState("h1", True), "h2": HostState("h2", True, volumes=(volume,))}
    desired = compute_desired(manifests(text), hosts, live, SETTINGS)
    (pod,) = desired.pods
    assert pod.host == "h2"
    (claim,) = [v for v in pod.volumes if v.source == "claim"]
    assert claim.docker_name == "mem_default_data_PVC"
    assert any("not enforced" in p.message for p in desired.problems)
    _, the_plan = make_plan(manifests(BYSTANDER), hosts, live, SETTINGS)
    assert [v.name for v in the_plan.orphaned_volumes] == ["mem_default_data_PVC"]
    assert not any(a.verb is Verb.REMOVE for a in the_plan.actions)


def test_node_port_zero_is_allocated_and_a_volume_without_source_is_an_empty_dir() -> None:
    text = """
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, nodePort: 0}]
---
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  containers: [{name: app, image: web:1, volumeMounts: [{name: scratch, mountPath: /s}]}]
  volumes: [{name: scratch}]
"""
    desired = compute_desired(manifests(text), cluster()[0], {}, SETTINGS)
    (service,) = desired.services
    assert 30000 <= (service.ports[0].node_port or 0) <= 32767
    web = next(p for p in desired.pods if p.name == "web")
    assert [(v.name, v.source) for v in web.volumes] == [("scratch", "emptyDir")]


def test_missing_references_are_errors_unless_optional() -> None:
    text = """
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
    - name: app
      image: web:1
      env:
        - {name: A, valueFrom: {secretKeyRef: {name: nope, key: k}}}
        - {name: B, valueFrom: {configMapKeyRef: {name: nope, key: k, optional: true}}}
"""
    result = validate(parse_text(text, "p.yaml"))
    (error,) = result.errors
    assert error.location.line == 10 and "Secret 'nope' is not defined" in error.message


def test_no_diagnostic_quotes_a_secrets_value() -> None:
    text = (
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ntype: kubernetes.io/dockerconfigjson\n"
        "data: {.dockerconfigjson: bm90LWpzb24tOTg3NjU0, bad: 'not base64 987654!'}\n"
        "stringData: {pin: 987654}\n"
    )
    result = validate(parse_text(text, "s.yaml"))
    assert len(result.errors) == 3
    for d in result.diagnostics:
        assert "987654" not in d.message and "bm90" not in d.message


def test_image_pull_secrets_give_the_registry_its_credentials() -> None:
    config = json.dumps({"auths": {"registry.example:5000": {"auth": "dTpwdy05ODc="}}})
    text = f"""
apiVersion: v1
kind: Secret
metadata: {{name: pull}}
type: kubernetes.io/dockerconfigjson
stringData: {{.dockerconfigjson: '{config}'}}
---
apiVersion: v1
kind: Pod
metadata: {{name: web}}
spec:
  imagePullSecrets: [{{name: pull}}]
  containers: [{{name: app, image: "registry.example:5000/team/web:1"}}]
"""
    (pod,) = compute_desired(manifests(text), cluster()[0], {}, SETTINGS).pods
    (auth,) = pod.app_containers[0].pull_auth
    assert auth == ("registry.example:5000", "u", "pw-987")
    assert "pw-987" not in repr(pod)
    credentials = T.pull_credentials("registry.example:5000/team/web", (auth,))
    assert credentials == {
        "username": "u",
        "password": "pw-987",
        "serveraddress": "registry.example:5000",
    }
    assert T.pull_credentials("busybox", (auth,)) is None


def test_a_label_from_an_older_version_with_secrets_in_clear_shows_no_false_change() -> None:
    """Pods made before digests keep their clear label: an unrelated change must not list
    the unchanged password as changed (nor print it)."""
    text = (
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers:\n"
        "    - {name: app, image: IMAGE, env: [{name: DB_PASSWORD, value: pw-3141}]}\n"
    )
    hosts, runtimes = cluster()
    apply(text.replace("IMAGE", "web:1"), hosts, runtimes)
    for item in runtimes["h1"].containers.values():  # as an older version labelled it
        if L.SPEC in item["Labels"]:
            item["Labels"][L.SPEC] = item["Labels"][L.SPEC].replace(
                json.dumps(
                    json.loads(item["Labels"][L.SPEC])["spec"]["containers"][0]["env"][0]["value"]
                ),
                '"pw-3141"',
            )
            assert "pw-3141" in item["Labels"][L.SPEC]
    runtimes["h1"].images.add("web:2")
    changed = manifests(text.replace("IMAGE", "web:2"))
    _, the_plan = make_plan(changed, hosts, observe(runtimes), SETTINGS)
    (action,) = the_plan.actions
    assert [c.path for c in action.changes] == ["containers[app].image"]
