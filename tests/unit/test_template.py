"""Replicas stamped from one template (``desire.template``) are the pods ``desire.pods.pod``
makes one by one: equal field for field, spec hash included, so that an upgrade to the
stamping recreates nothing; and a controller's template is normalised once, not once per
replica (counted, not timed)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from reconciler.core.model import DesiredPod, HostState
from reconciler.desire import pods as P
from reconciler.desire.compute import compute_desired
from reconciler.desire.settings import Settings
from reconciler.desire.template import StampedPod, container_names, infra_ports
from reconciler.engine import translate as T
from reconciler.plan.planner import plan
from reconciler.source.hosts import Host
from tests.unit.test_desired import H1, H2, container, desired, rc_manifest

TEMPLATES: dict[str, dict[str, Any]] = {
    "plain": {"containers": [container()]},
    "everything": {
        "containers": [
            container(
                command=["httpd", "-f"],
                args=["-p", "8080"],
                env=[{"name": "MODE", "value": "prod"}, {"name": "API_TOKEN", "value": "s3"}],
                ports=[{"containerPort": 8080, "name": "http"}],
                resources={"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": 1}},
                volumeMounts=[{"name": "scratch", "mountPath": "/s"}],
                readinessProbe={"httpGet": {"path": "/", "port": "http"}},
                livenessProbe={"exec": {"command": ["true"]}},
                securityContext={"readOnlyRootFilesystem": True},
            ),
            {"name": "side", "image": "example/side:2", "workingDir": "/w"},
        ],
        "initContainers": [{"name": "setup", "image": "example/init:1", "command": ["true"]}],
        "volumes": [
            {"name": "scratch", "emptyDir": {"medium": "Memory", "sizeLimit": "8Mi"}},
            {"name": "host", "hostPath": {"path": "/srv"}},
        ],
        "nodeSelector": {"zone": "a"},
    },
    "host port": {"containers": [container(ports=[{"containerPort": 80, "hostPort": 8080}])]},
    "fixed hostname": {"hostname": "shared", "containers": [container()]},
}


def _fields(pod: DesiredPod) -> dict[str, Any]:
    return {f.name: getattr(pod, f.name) for f in dataclasses.fields(DesiredPod)}


@pytest.mark.parametrize("hosts", [[H1], [H1, H2]], ids=["one host", "two hosts"])
@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_stamped_replicas_equal_pods_made_one_by_one(
    name: str, hosts: list[Host], monkeypatch: pytest.MonkeyPatch
) -> None:
    replicas = 1 if name == "host port" else 3  # replicas of one host cannot share a port
    state = desired(rc_manifest(TEMPLATES[name], replicas=replicas), hosts=hosts)
    assert state.problems == []
    stamped = list(state.pods)
    assert all(isinstance(p, StampedPod) for p in stamped)
    # the reference: every replica through desire.pods.pod, as before stamping
    monkeypatch.setattr("reconciler.desire.template.uses_config", lambda raw: True)
    reference = desired(rc_manifest(TEMPLATES[name], replicas=replicas), hosts=hosts)
    assert not any(isinstance(p, StampedPod) for p in reference.pods)
    assert len(stamped) == len(reference.pods) == replicas
    for mine, theirs in zip(stamped, reference.pods, strict=True):
        assert mine.spec_hash == theirs.spec_hash
        assert container_names(mine) == tuple(c.container for c in theirs.containers)
        assert infra_ports(mine) == theirs.containers[0].ports
        assert _fields(mine) == _fields(theirs)
        assert mine == theirs and theirs == mine
        # what the engine is given is the same too
        for a, b in zip(mine.containers, theirs.containers, strict=True):
            assert T.container_labels(mine, a, "default", "r1") == T.container_labels(
                theirs, b, "default", "r1"
            )


def test_spec_hashes_are_pinned() -> None:
    """The hashes of today's pods: a change here recreates every running pod on upgrade."""
    state = desired(rc_manifest(TEMPLATES["everything"], replicas=2), hosts=[H1, H2])
    single = desired(rc_manifest(TEMPLATES["plain"], replicas=1))
    assert {p.name: p.spec_hash for p in state.pods} | {
        "single": single.pods[0].spec_hash
    } == PINNED


#: computed by main before stamping existed (3d389bc), and by stamping: identical
PINNED = {"fe-0": "5d9e3f8cd7622250", "fe-1": "ba6e4793bd0b1298", "single": "cef1f94c27a1d660"}


def test_a_replica_read_whole_is_the_same_value_after_replace() -> None:
    pod = desired(rc_manifest(TEMPLATES["everything"], replicas=1)).pods[0]
    again = dataclasses.replace(pod, replica=7)
    assert again.replica == 7 and again.containers == pod.containers
    assert container_names(again) == container_names(pod)


def test_a_template_is_normalised_once_per_controller_for_10000_in_sync_pods(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Planning 10,000 in-sync pods (100 controllers x 100 replicas, 3 hosts) calls the
    template normaliser once per controller: counted, not timed."""
    from bench.scale import manifests_text
    from reconciler.check.validate import validate
    from reconciler.source.load import parse_text

    manifests = list(validate(parse_text(manifests_text(10_000), "scale.yaml")).manifests)
    hosts = [Host(f"h{i}", f"tcp://127.0.0.1:{1 + i}", f"10.231.0.{11 + i}") for i in range(3)]
    settings = Settings(instance="scale")
    seeded = compute_desired(manifests, hosts, None, settings)
    live = {
        h.name: HostState(
            h.name,
            True,
            tuple(
                T.live_container(h.name, _listed(pod, c, settings.instance))
                for pod in seeded.pods
                if pod.host == h.name
                for c in pod.containers
            ),
        )
        for h in hosts
    }
    calls: list[str] = []
    real = P.normalise_pod_spec

    def counted(spec: Any, hostname: str) -> dict[str, Any]:
        calls.append(hostname)
        return real(spec, hostname)

    monkeypatch.setattr(P, "normalise_pod_spec", counted)
    state = compute_desired(manifests, hosts, live, settings)
    the_plan = plan(state, live)
    assert the_plan.in_sync and len(state.pods) == 10_000
    assert len(calls) <= 100, f"{len(calls)} normalisations for 100 controllers"


def _listed(pod: DesiredPod, c: Any, instance: str) -> dict[str, Any]:
    return {
        "Id": c.docker_name,
        "Names": [f"/{c.docker_name}"],
        "Labels": T.container_labels(pod, c, instance, ""),
        "State": "running",
        "Status": "Up 1 hour",
        "Image": c.image,
    }
