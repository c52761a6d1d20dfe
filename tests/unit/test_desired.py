"""compute_desired: from manifests to the Docker containers to run, and where. No mocks."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from reconciler.check.policy import Level, Policy
from reconciler.check.validate import validate
from reconciler.core import labels as L
from reconciler.core.model import DesiredPod, HostState, MountSpec, PortBinding, VolumeSpec
from reconciler.desire.compute import compute_desired
from reconciler.desire.pods import default_pull_policy
from reconciler.desire.settings import DEFAULT_INFRA_IMAGE, DesiredState, Settings, docker_name
from reconciler.source.hosts import Host
from reconciler.source.load import parse_text

SSD = {"zone": "a", "disk": "ssd"}
H1 = Host(name="h1", url="tcp://10.0.0.1:2375", address="10.0.0.1", labels=SSD)
H2 = Host(name="h2", url="tcp://10.0.0.2:2375", address="10.0.0.2", labels=SSD)


def pod_manifest(spec: dict[str, Any], name: str = "web", **metadata: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, **metadata}, "spec": spec}


def rc_manifest(spec: dict[str, Any], name: str = "fe", replicas: int | None = 2) -> dict[str, Any]:
    body: dict[str, Any] = {
        "selector": {"app": name},
        "template": {"metadata": {"labels": {"app": name}}, "spec": spec},
    }
    if replicas is not None:
        body["replicas"] = replicas
    return {
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "metadata": {"name": name},
        "spec": body,
    }


def desired(
    *objects: dict[str, Any] | str,
    hosts: list[Host] | None = None,
    live: dict[str, HostState] | None = None,
    settings: Settings | None = None,
) -> DesiredState:
    """The desired state of valid manifests (given as objects or YAML text)."""
    text = "\n---\n".join(
        o if isinstance(o, str) else yaml.safe_dump(o, sort_keys=False) for o in objects
    )
    # the tests play the operator: host ports, paths and namespaces are theirs to use
    result = validate(parse_text(text, "test.yaml"), Policy(Level.PRIVILEGED))
    assert result.errors == [], result.errors
    return compute_desired(result.manifests, hosts or [H1], live, settings)


def only_pod(*objects: dict[str, Any] | str, settings: Settings | None = None) -> DesiredPod:
    state = desired(*objects, settings=settings)
    assert state.problems == []
    assert len(state.pods) == 1
    return state.pods[0]


def container(image: str = "example/web:1.0", **fields: Any) -> dict[str, Any]:
    return {"name": "app", "image": image, **fields}


def app(pod: DesiredPod, name: str = "app") -> Any:
    return next(c for c in pod.app_containers if c.container == name)


# -- containers -----------------------------------------------------------------------------
def test_command_becomes_entrypoint_and_args_become_cmd() -> None:
    pod = only_pod(
        pod_manifest({"containers": [container(command=["sh", "-c"], args=["echo hi"])]})
    )
    assert app(pod).entrypoint == ("sh", "-c")
    assert app(pod).cmd == ("echo hi",)


def test_no_command_or_args_keeps_the_image_defaults() -> None:
    pod = only_pod(pod_manifest({"containers": [container()]}))
    assert app(pod).entrypoint is None
    assert app(pod).cmd is None


def test_empty_args_override_the_image_cmd() -> None:
    pod = only_pod(pod_manifest({"containers": [container(args=[])]}))
    assert app(pod).cmd == ()


def test_env_values_kept_in_order_and_value_from_resolved() -> None:
    env = [
        {"name": "B", "value": "2"},
        {"name": "FROM_FIELD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "A", "value": "x y"},
        {"name": "EMPTY"},
    ]
    pod = only_pod(pod_manifest({"containers": [container(env=env)]}))
    assert app(pod).env == (("B", "2"), ("FROM_FIELD", "web"), ("A", "x y"), ("EMPTY", ""))


def test_working_dir() -> None:
    pod = only_pod(pod_manifest({"containers": [container(workingDir="/srv")]}))
    assert app(pod).working_dir == "/srv"


@pytest.mark.parametrize("cpu", [0.5, "0.5", "500m"])
def test_cpu_limit_to_nano_cpus(cpu: Any) -> None:
    pod = only_pod(pod_manifest({"containers": [container(resources={"limits": {"cpu": cpu}})]}))
    assert app(pod).nano_cpus == 500_000_000


@pytest.mark.parametrize(
    ("memory", "expected"),
    [("128Mi", 128 * 2**20), ("1Gi", 2**30), ("64M", 64_000_000), (1000, 1000)],
)
def test_memory_limit_to_bytes(memory: Any, expected: int) -> None:
    resources = {"limits": {"memory": memory}, "requests": {"memory": memory}}
    pod = only_pod(pod_manifest({"containers": [container(resources=resources)]}))
    assert app(pod).memory_bytes == expected
    assert app(pod).memory_reservation == expected


@pytest.mark.parametrize(
    ("cpu", "shares"), [("1", 1024), (0.5, 512), ("250m", 256), ("100m", 102), ("1m", 2)]
)
def test_cpu_request_to_cpu_shares(cpu: Any, shares: int) -> None:
    resources = {"requests": {"cpu": cpu}}
    pod = only_pod(pod_manifest({"containers": [container(resources=resources)]}))
    assert app(pod).cpu_shares == shares
    assert app(pod).nano_cpus is None


def test_no_resources_means_no_limits() -> None:
    c = app(only_pod(pod_manifest({"containers": [container()]})))
    assert (c.nano_cpus, c.cpu_shares, c.memory_bytes, c.memory_reservation) == (
        None,
        None,
        None,
        None,
    )


# -- volumes ----------------------------------------------------------------------------------
def test_empty_dir_on_disk_is_a_docker_volume_named_per_instance_and_pod() -> None:
    spec = {
        "containers": [container(volumeMounts=[{"name": "data", "mountPath": "/data"}])],
        "volumes": [{"name": "data", "emptyDir": {}}],
    }
    pod = only_pod(pod_manifest(spec, namespace="shop"), settings=Settings(instance="blue"))
    assert pod.volumes == (
        VolumeSpec(name="data", source="emptyDir", docker_name="blue_shop_web_data", medium=""),
    )
    assert app(pod).mounts == (MountSpec("data", "/data", False),)


def test_empty_dir_in_memory_with_size_limit() -> None:
    spec = {
        "containers": [
            container(volumeMounts=[{"name": "scratch", "mountPath": "/tmp", "readOnly": True}])
        ],
        "volumes": [{"name": "scratch", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}],
    }
    pod = only_pod(pod_manifest(spec))
    (volume,) = pod.volumes
    assert volume.source == "emptyDir"
    assert volume.medium == "Memory"
    assert volume.size_bytes == 64 * 2**20
    assert app(pod).mounts == (MountSpec("scratch", "/tmp", True),)


def test_host_path_volume() -> None:
    spec = {
        "containers": [container(volumeMounts=[{"name": "logs", "mountPath": "/var/log/app"}])],
        "volumes": [{"name": "logs", "hostPath": {"path": "/srv/logs"}}],
    }
    pod = only_pod(pod_manifest(spec))
    assert pod.volumes == (VolumeSpec(name="logs", source="hostPath", host_path="/srv/logs"),)
    assert app(pod).mounts == (MountSpec("logs", "/var/log/app", False),)


# -- restart and pull policies ----------------------------------------------------------------
@pytest.mark.parametrize("policy", ["Always", "OnFailure", "Never"])
def test_restart_policy_applies_to_app_containers_not_infra(policy: str) -> None:
    pod = only_pod(pod_manifest({"restartPolicy": policy, "containers": [container()]}))
    assert pod.restart_policy == policy
    assert app(pod).restart_policy == policy
    assert pod.containers[0].role == L.ROLE_INFRA
    assert pod.containers[0].restart_policy == "Always"


def test_restart_policy_defaults_to_always() -> None:
    assert only_pod(pod_manifest({"containers": [container()]})).restart_policy == "Always"


@pytest.mark.parametrize(
    ("image", "policy"),
    [
        ("busybox", "Always"),
        ("busybox:latest", "Always"),
        ("library/busybox", "Always"),
        ("localhost:5000/busybox", "Always"),
        ("localhost:5000/busybox:latest", "Always"),
        ("busybox:1.36", "IfNotPresent"),
        ("localhost:5000/busybox:1.36", "IfNotPresent"),
        ("busybox@sha256:" + "a" * 64, "IfNotPresent"),
    ],
)
def test_default_pull_policy(image: str, policy: str) -> None:
    assert default_pull_policy(image) == policy
    pod = only_pod(pod_manifest({"containers": [container(image=image)]}))
    assert app(pod).pull_policy == policy


def test_explicit_pull_policy_wins() -> None:
    c = container(image="busybox:latest", imagePullPolicy="Never")
    assert app(only_pod(pod_manifest({"containers": [c]}))).pull_policy == "Never"


# -- the infra container --------------------------------------------------------------------
def test_infra_container_first_with_hostname_and_published_ports() -> None:
    ports = [
        {"containerPort": 80, "hostPort": 8080},
        {"containerPort": 53, "protocol": "UDP", "hostPort": 53, "hostIP": "127.0.0.1"},
        {"containerPort": 9090},
    ]
    pod = only_pod(pod_manifest({"containers": [container(ports=ports)]}))
    infra = pod.containers[0]
    assert (infra.container, infra.role) == (L.INFRA_CONTAINER, L.ROLE_INFRA)
    assert infra.image == DEFAULT_INFRA_IMAGE
    assert infra.hostname == "web"
    assert infra.ports == (
        PortBinding(80, "TCP", 8080, "10.0.0.1"),  # the host's address, not every address
        PortBinding(53, "UDP", 53, "127.0.0.1"),  # unless hostIP says where
    )
    assert app(pod).ports == ()


def test_a_host_port_binds_every_address_only_when_host_ip_says_so() -> None:
    ports = [{"containerPort": 80, "hostPort": 8080, "hostIP": "0.0.0.0"}]
    pod = only_pod(pod_manifest({"containers": [container(ports=ports)]}))
    assert pod.containers[0].ports == (PortBinding(80, "TCP", 8080, "0.0.0.0"),)


def test_binding_host_ports_to_the_address_changes_the_hash_of_those_pods_only() -> None:
    plain = only_pod(pod_manifest({"containers": [container()]}))
    named = {"containerPort": 80, "hostPort": 8080, "hostIP": "10.0.0.1"}
    explicit = only_pod(pod_manifest({"containers": [container(ports=[named])]}))
    implicit = only_pod(
        pod_manifest({"containers": [container(ports=[{"containerPort": 80, "hostPort": 8080}])]})
    )
    # a pod with no hostPort (or with a hostIP) keeps the hash it had before: not recreated
    assert plain.spec_hash == "02c9a255212b4725"  # as computed before hostPorts moved
    assert explicit.spec_hash == "4a5bbea6e4f507a7"
    # one that published on every address is recreated once, to bind the address only
    assert implicit.spec_hash != explicit.spec_hash


def test_infra_image_from_settings() -> None:
    pod = only_pod(
        pod_manifest({"containers": [container()]}), settings=Settings(infra_image="my/pause:3")
    )
    assert pod.containers[0].image == "my/pause:3"


def test_hostname_is_the_pod_name_truncated_to_63() -> None:
    name = "a" * 62 + "-b" + "c" * 20  # a valid name of 84 characters
    pod = only_pod(pod_manifest({"containers": [container()]}, name=name))
    hostname = pod.containers[0].hostname
    assert len(hostname) <= 63
    assert hostname == "a" * 62  # cut at 63 ("...a-"), and the trailing '-' dropped


def test_hostname_truncation_keeps_63_characters_when_it_can() -> None:
    name = "x" * 70
    assert only_pod(pod_manifest({"containers": [container()]}, name=name)).containers[
        0
    ].hostname == ("x" * 63)


def test_explicit_hostname() -> None:
    pod = only_pod(pod_manifest({"hostname": "db-primary", "containers": [container()]}))
    assert pod.containers[0].hostname == "db-primary"


# -- names ------------------------------------------------------------------------------------
def test_rc_replicas_have_stable_ordinal_names() -> None:
    state = desired(rc_manifest({"containers": [container()]}, replicas=3))
    assert [(p.name, p.replica) for p in state.pods] == [("fe-0", 0), ("fe-1", 1), ("fe-2", 2)]
    assert {p.owner.kind for p in state.pods} == {"ReplicationController"}
    assert list(state.replicas.values()) == [3]
    assert dict(state.pods[0].labels) == {"app": "fe"}


def test_rc_replicas_default_to_one() -> None:
    state = desired(rc_manifest({"containers": [container()]}, replicas=None))
    assert [p.name for p in state.pods] == ["fe-0"]


def test_rc_with_zero_replicas_has_no_pods_but_is_wanted() -> None:
    state = desired(rc_manifest({"containers": [container()]}, replicas=0))
    assert state.pods == []
    assert list(state.replicas.values()) == [0]


def test_a_service_is_a_forwarder_on_every_host_not_a_workload_pod() -> None:
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "svc"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
    }
    pod = pod_manifest({"containers": [container()]}, labels={"app": "web"})
    state = desired(service, pod, hosts=[H1, H2])
    workloads = [p for p in state.pods if p.owner.kind != "Service"]
    forwarders = [p for p in state.pods if p.owner.kind == "Service"]
    assert [p.name for p in workloads] == ["web"]
    assert sorted((p.name, p.host) for p in forwarders) == [("svc_svc", "h1"), ("svc_svc", "h2")]
    assert all(p.containers[0].role == L.ROLE_FORWARDER for p in forwarders)
    assert state.replicas == {}


def test_docker_names() -> None:
    assert docker_name("default", "shop", "web", "app") == "default_shop_web_app"


def test_docker_names_unique_per_instance() -> None:
    objects = (
        pod_manifest(
            {
                "containers": [container(), {"name": "side", "image": "example/side:1"}],
                "volumes": [{"name": "data", "emptyDir": {}}],
            }
        ),
        rc_manifest({"containers": [container()]}, replicas=2),
    )
    names: dict[str, set[str]] = {}
    for instance in ("default", "blue"):
        state = desired(*objects, settings=Settings(instance=instance))
        found = [c.docker_name for p in state.pods for c in p.containers]
        found += [v.docker_name for p in state.pods for v in p.volumes if v.docker_name]
        assert len(found) == len(set(found)), found  # unique within the instance
        names[instance] = set(found)
        assert all(n.startswith(f"{instance}_") for n in found)
    assert names["default"].isdisjoint(names["blue"])


# -- the spec hash ----------------------------------------------------------------------------
BASE = pod_manifest(
    {
        "containers": [
            container(
                env=[{"name": "MODE", "value": "blue"}],
                ports=[{"containerPort": 80, "name": "http"}],
                resources={"limits": {"cpu": "500m", "memory": "64Mi"}},
            )
        ],
        "nodeSelector": {"zone": "a", "disk": "ssd"},
    },
    labels={"app": "web"},
)


def hash_of(manifest: dict[str, Any] | str, **kwargs: Any) -> str:
    return only_pod(manifest, **kwargs).spec_hash


def changed(**edits: Any) -> dict[str, Any]:
    manifest = copy.deepcopy(BASE)
    c = manifest["spec"]["containers"][0]
    for key, value in edits.items():
        c[key] = value
    return manifest


def test_spec_hash_is_stable_across_runs() -> None:
    # A fixed value: a different hash for the same manifest after an upgrade of the tool
    # would recreate every pod it manages. Change it only together with a migration note.
    assert hash_of(BASE) == hash_of(copy.deepcopy(BASE))
    # d9c9...: pods join the instance network (Services); 3f0e... before, on the default bridge
    assert hash_of(BASE) == "92a21c71fc574f89"


def test_spec_hash_ignores_key_order() -> None:
    reordered = (
        "kind: Pod\n"
        "spec:\n"
        "  nodeSelector: {disk: ssd, zone: a}\n"
        "  containers:\n"
        "    - resources: {limits: {memory: 64Mi, cpu: 500m}}\n"
        "      ports: [{name: http, containerPort: 80}]\n"
        "      env: [{value: blue, name: MODE}]\n"
        "      image: example/web:1.0\n"
        "      name: app\n"
        "metadata: {labels: {app: web}, name: web}\n"
        "apiVersion: v1\n"
    )
    assert hash_of(reordered) == hash_of(BASE)


def test_spec_hash_ignores_unhonoured_fields_and_spelled_out_defaults() -> None:
    assert hash_of(changed(terminationMessagePath="/dev/log", tty=True)) == hash_of(BASE)
    probe = {"httpGet": {"path": "/", "port": 80}, "initialDelaySeconds": 5}
    assert hash_of(changed(livenessProbe=probe)) != hash_of(BASE)  # honoured since issue 11
    spelled = {**probe, "periodSeconds": 10, "timeoutSeconds": 1, "failureThreshold": 3}
    spelled["httpGet"] = {**probe["httpGet"], "scheme": "HTTP"}
    assert hash_of(changed(livenessProbe=spelled)) == hash_of(changed(livenessProbe=probe))
    grpc_only = {"grpc": {"port": 80}}  # not run, so as if not written (validate warns)
    assert hash_of(changed(livenessProbe=grpc_only)) == hash_of(BASE)
    defaults = changed(imagePullPolicy="IfNotPresent")
    defaults["spec"]["restartPolicy"] = "Always"
    defaults["spec"]["containers"][0]["ports"][0]["protocol"] = "TCP"
    assert hash_of(defaults) == hash_of(BASE)


def test_spec_hash_does_not_depend_on_placement() -> None:
    a = desired(BASE, hosts=[H1]).pods[0]
    b = desired(BASE, hosts=[H2]).pods[0]
    assert (a.host, b.host) == ("h1", "h2")
    assert a.spec_hash == b.spec_hash


@pytest.mark.parametrize(
    "edit",
    [
        {"image": "example/web:1.1"},
        {"env": [{"name": "MODE", "value": "green"}]},
        {"env": [{"name": "MODE", "value": "blue"}, {"name": "DEBUG", "value": "1"}]},
        {"ports": [{"containerPort": 8080, "name": "http"}]},
        {"ports": [{"containerPort": 80, "name": "http", "hostPort": 8080}]},
        {"command": ["sh"]},
        {"args": ["-v"]},
        {"resources": {"limits": {"cpu": "1", "memory": "64Mi"}}},
        {"imagePullPolicy": "Always"},
        {"workingDir": "/srv"},
    ],
    ids=lambda e: next(iter(e)),
)
def test_spec_hash_changes_with_what_is_acted_on(edit: dict[str, Any]) -> None:
    assert hash_of(changed(**edit)) != hash_of(BASE)


def test_spec_hash_changes_with_pod_level_fields_labels_and_infra_image() -> None:
    restart = copy.deepcopy(BASE)
    restart["spec"]["restartPolicy"] = "Never"
    relabelled = copy.deepcopy(BASE)
    relabelled["metadata"]["labels"]["tier"] = "front"
    renamed = copy.deepcopy(BASE)
    renamed["metadata"]["name"] = "web2"
    hashes = {
        hash_of(BASE),
        hash_of(restart),
        hash_of(relabelled),
        hash_of(renamed),
        hash_of(BASE, settings=Settings(infra_image="my/pause:2")),
    }
    assert len(hashes) == 5


def test_replicas_share_a_template_hash_only_up_to_their_names() -> None:
    state = desired(rc_manifest({"containers": [container()]}, replicas=2))
    # the hostname (the pod name) is part of the spec, so each replica has its own hash,
    # and a change of replicas alone changes no replica's hash
    assert state.pods[0].spec_hash != state.pods[1].spec_hash
    more = desired(rc_manifest({"containers": [container()]}, replicas=5))
    assert [p.spec_hash for p in more.pods[:2]] == [p.spec_hash for p in state.pods]


# -- placement --------------------------------------------------------------------------------
def test_unreachable_hosts_get_no_pods() -> None:
    live = {"h1": HostState("h1", reachable=False, error="down"), "h2": HostState("h2", True)}
    state = desired(BASE_NO_SELECTOR, hosts=[H1, H2], live=live)
    assert [p.host for p in state.pods] == ["h2"]


def test_nothing_reachable_is_a_problem_at_the_manifest() -> None:
    live = {"h1": HostState("h1", reachable=False, error="down")}
    state = desired(BASE_NO_SELECTOR, hosts=[H1], live=live)
    assert state.pods == []
    (problem,) = state.problems
    assert problem.message == (
        "pod web cannot be placed: no host is reachable (see the unreachable hosts above)"
    )  # not "no capacity left": nothing answered at all
    assert (problem.kind, problem.name) == ("Pod", "web")
    assert problem.location.file == "test.yaml"
    assert problem.location.line == 5  # spec: after apiVersion, kind, metadata and its name


def test_host_port_conflict_points_at_the_second_pod() -> None:
    spec = {"containers": [container(ports=[{"containerPort": 80, "hostPort": 80}])]}
    state = desired(rc_manifest(spec, replicas=3))
    assert [p.message.split(" both")[0] for p in state.problems] == [
        "pods fe-0 and fe-1",
        "pods fe-0 and fe-2",
    ]
    assert {p.kind for p in state.problems} == {"ReplicationController"}
    assert len(state.pods) == 3


def test_no_host_port_conflict_across_hosts() -> None:
    spec = {"containers": [container(ports=[{"containerPort": 80, "hostPort": 80}])]}
    state = desired(rc_manifest(spec, replicas=2), hosts=[H1, H2])
    assert state.problems == []
    assert [p.host for p in state.pods] == ["h1", "h2"]


BASE_NO_SELECTOR = pod_manifest({"containers": [container()]})
