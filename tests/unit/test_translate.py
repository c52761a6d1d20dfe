"""The engine's pure translation: labels, create arguments and live state, with plain values.

Everything a pass decides about ownership and drift depends on these labels, so they are
pinned here without an engine; ``tests/integration`` checks that Docker accepts them.
"""

from __future__ import annotations

import json

from reconciler.check.policy import Level, Policy
from reconciler.check.validate import validate
from reconciler.core import labels as L
from reconciler.core.model import DesiredPod
from reconciler.desire.compute import compute_desired
from reconciler.desire.settings import Settings
from reconciler.engine import translate as T
from reconciler.source.hosts import Host
from reconciler.source.load import parse_text

POD = """
apiVersion: v1
kind: ReplicationController
metadata: {name: web}
spec:
  replicas: 2
  selector: {app: web}
  template:
    metadata: {labels: {app: web}}
    spec:
      volumes:
        - {name: scratch, emptyDir: {medium: Memory, sizeLimit: 64Mi}}
        - {name: data, emptyDir: {}}
        - {name: logs, hostPath: {path: /var/log/web}}
      containers:
        - name: app
          image: web:1
          command: [httpd]
          args: [-f, -p, "8080"]
          env: [{name: MODE, value: prod}]
          workingDir: /srv
          ports:
            - {containerPort: 8080, hostPort: 18080, hostIP: 127.0.0.1}
            - {containerPort: 9090}
          resources: {limits: {cpu: 500m, memory: 64Mi}, requests: {cpu: 250m}}
          volumeMounts:
            - {name: scratch, mountPath: /tmp}
            - {name: data, mountPath: /data, readOnly: true}
            - {name: logs, mountPath: /logs}
"""


def desired_pod(settings: Settings | None = None) -> DesiredPod:
    result = validate(parse_text(POD, "web.yaml"), Policy(Level.PRIVILEGED))  # hostPath, hostPort
    assert result.valid, result.errors
    hosts = [Host("local", "unix:///x.sock", "127.0.0.1")]
    state = compute_desired(result.manifests, hosts, settings=settings or Settings(instance="t"))
    return next(p for p in state.pods if p.name == "web-1")


def test_every_container_carries_ownership_identity_and_the_spec_hash() -> None:
    pod = desired_pod()
    for container in pod.containers:
        labels = T.container_labels(pod, container, "t", "abc123")
        assert L.is_owned(labels, "t") and not L.is_owned(labels, "other")
        assert labels[L.POD] == "web-1" and labels[L.REPLICA] == "1"
        assert labels[L.OWNER_KIND] == "ReplicationController"
        assert labels[L.SPEC_HASH] == pod.spec_hash
        assert labels[L.REVISION] == "abc123"
        assert json.loads(labels[L.POD_LABELS]) == {"app": "web"}
        assert labels[L.SOURCE].startswith("web.yaml:")
    infra, app = pod.containers
    # only the infra container keeps the spec, for field-level diffs
    assert json.loads(T.container_labels(pod, infra, "t", "")[L.SPEC]) == {"spec": pod.spec}
    assert L.SPEC not in T.container_labels(pod, app, "t", "")


def test_infra_arguments_publish_ports_and_share_ipc() -> None:
    pod = desired_pod()
    args = T.infra_args(pod, "t", "rev")
    assert args.name == "t_default_web-1_POD" and args.image == "reconciler/pause:1"
    assert args.hostname == "web-1"
    assert args.ipc_mode == "shareable" and args.restart_policy == "always" and args.init
    assert dict(args.port_bindings) == {"8080/tcp": [("127.0.0.1", 18080)]}
    assert args.exposed == ((8080, "tcp"),)
    assert args.endpoint is not None and args.endpoint.network == args.network_mode


def test_app_arguments_join_the_infra_container_with_resources_and_mounts() -> None:
    pod = desired_pod()
    args = T.app_args(pod, pod.containers[1], "INFRA", "t", "rev")
    assert args.network_mode == args.ipc_mode == "container:INFRA"
    assert args.entrypoint == ("httpd",) and args.command == ("-f", "-p", "8080")
    assert args.environment[-1] == "MODE=prod" and args.working_dir == "/srv"
    assert args.restart_policy == "always"
    assert args.nano_cpus == 500_000_000 and args.mem_limit == 64 * 2**20
    assert args.cpu_shares == 256
    assert dict(args.binds) == {"/var/log/web": {"bind": "/logs", "mode": "rw"}}
    assert args.volume_mounts == (
        T.VolumeMount("/tmp", "t_default_web-1_scratch", False),
        T.VolumeMount("/data", "t_default_web-1_data", True),
    )


def test_volumes_are_owned_by_their_pod_and_memory_ones_are_tmpfs() -> None:
    volumes = {v.name: v for v in T.volume_args(desired_pod(), "t")}
    assert set(volumes) == {"t_default_web-1_scratch", "t_default_web-1_data"}
    scratch = volumes["t_default_web-1_scratch"]
    assert scratch.driver_opts == {"type": "tmpfs", "device": "tmpfs", "o": f"size={64 * 2**20}"}
    assert volumes["t_default_web-1_data"].driver_opts is None
    assert L.is_owned(scratch.labels, "t") and scratch.labels[L.POD] == "web-1"


def test_image_references_split_at_the_tag_not_at_a_registry_port() -> None:
    assert T.image_reference("busybox") == ("busybox", "")
    assert T.image_reference("busybox:1.36") == ("busybox", "1.36")
    assert T.image_reference("registry:5000/team/app") == ("registry:5000/team/app", "")
    assert T.image_reference("registry:5000/team/app:2") == ("registry:5000/team/app", "2")


def test_the_listing_becomes_live_containers_and_foreign_ones_are_dropped() -> None:
    pod = desired_pod()
    ours = T.container_labels(pod, pod.containers[0], "t", "rev")
    listing = [
        {
            "Id": "a" * 64,
            "Names": ["/t_default_web-1_POD"],
            "Labels": ours,
            "State": "running",
            "Status": "Up 3 minutes",
            "Created": 1_700_000_000,
            "Image": "reconciler/pause:1",
            "Ports": [
                {"PrivatePort": 8080, "PublicPort": 18080, "Type": "tcp"},
                {"PrivatePort": 9090, "Type": "tcp"},  # exposed, not published
            ],
            "NetworkSettings": {"Networks": {"reconciler-t": {"IPAddress": "10.64.0.5"}}},
        },
        {"Id": "b" * 64, "Names": ["/t_default_web-1_app"], "Labels": {}, "State": "running"},
        {
            "Id": "c" * 64,
            "Names": ["/t_reconciler_state"],
            "Labels": T.marker_labels("t", "old"),
            "State": "created",
            "Created": 1,
        },
        {
            "Id": "d" * 64,
            "Names": ["/t_reconciler_state"],
            "Labels": T.marker_labels("t", "newest"),
            "State": "created",
            "Created": 2,
        },
    ]
    state = T.host_state("local", "t", listing)
    assert state.reachable and state.applied_revision == "newest"
    (live,) = state.containers
    assert live.name == "t_default_web-1_POD" and live.running
    assert live.ip_address == "10.64.0.5" and live.ports == ((8080, "tcp", 18080),)
