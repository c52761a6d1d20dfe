"""Deployments (``apps/v1``): the spec with Kubernetes' defaults, the hash that identifies a
revision of the pod template, the pods' names, and the pods a rollout decision wants. Pure.

A Deployment's pods are ``<name>-<template hash>-<ordinal>``: the hash says which revision
a pod runs (``get pods`` shows old and new side by side), the ordinal is stable, so a rerun
computes the same names and can neither duplicate nor lose a pod. *Which* pods should exist
at a moment of a rollout is not decided here but by the rollout's step function
(``plan.rollout``), from the live pods, their readiness and the rollout's memory; its
answer comes back as a :class:`RolloutDecision` and :func:`deployment_pods` makes the pods
of it, exactly as a ReplicationController's are made (``desire.pods.pod``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.check.deployments import (
    DEFAULT_HISTORY_LIMIT,
    DEFAULT_MAX_SURGE,
    DEFAULT_MAX_UNAVAILABLE,
    DEFAULT_PROGRESS_DEADLINE,
    SELECTOR_OPERATORS,
    TEMPLATE_HASH_LENGTH,
    int_or_percent,
)
from reconciler.core import labels as L
from reconciler.core.model import Location, Manifest, ObjectRef, as_list, as_map
from reconciler.core.selectors import Requirement, Selector
from reconciler.desire.pods import normalise_pod_spec
from reconciler.desire.settings import Settings

TEMPLATE_SPEC_PATH: tuple[str | int, ...] = ("spec", "template", "spec")


def scaled(value: int | str, total: int, *, round_up: bool) -> int:
    """``maxSurge``/``maxUnavailable`` in pods: a number as is, a percentage of ``total``
    rounded up (surge) or down (unavailable), as ``intstr.GetScaledValueFromIntOrPercent``."""
    number = int_or_percent(value)
    if number is None:
        return 0
    if isinstance(value, int):
        return number
    exact = total * number / 100
    return math.ceil(exact) if round_up else math.floor(exact)


def fenceposts(surge: int | str, unavailable: int | str, replicas: int) -> tuple[int, int]:
    """(max surge, max unavailable) in pods, as the deployment controller's
    ``ResolveFenceposts``: surge rounds up, unavailability down, and when both come to 0
    one pod may be unavailable, so that a rollout can always move."""
    up = scaled(surge, replicas, round_up=True)
    down = scaled(unavailable, replicas, round_up=False)
    if up == 0 and down == 0:
        down = 1
    return up, down


def label_selector(selector: Mapping[str, Any]) -> Selector:
    """``matchLabels`` and ``matchExpressions`` as one ``core.selectors.Selector``."""
    requirements = [
        Requirement(str(key), "=", (str(value),))
        for key, value in as_map(selector.get("matchLabels")).items()
    ]
    for expression in map(as_map, as_list(selector.get("matchExpressions"))):
        operator = SELECTOR_OPERATORS.get(str(expression.get("operator")), "exists")
        values = tuple(str(v) for v in as_list(expression.get("values")))
        requirements.append(Requirement(str(expression.get("key")), operator, values))
    return Selector(tuple(requirements))


def template_labels(template: Mapping[str, Any]) -> dict[str, str]:
    return {
        str(k): str(v) for k, v in as_map(as_map(template.get("metadata")).get("labels")).items()
    }


def template_hash(
    template: Mapping[str, Any], settings: Settings, multi_host: bool, restarted_at: float = 0.0
) -> str:
    """The revision's identity: everything a pod of the template is made from that is the
    same for every replica and every host. So any change that recreates pods (the template,
    the infra image, the network, publishing for other hosts) is a new revision, rolled out
    under the strategy's limits, and never a recreate of every pod at once."""
    spec = as_map(template.get("spec"))
    hashed: dict[str, Any] = {
        "labels": template_labels(template),
        "spec": normalise_pod_spec(spec, str(spec.get("hostname") or "")),
        "infraImage": settings.infra_image,
        "network": [settings.network.name, settings.network.subnet],
        "publishPorts": multi_host,
    }
    if restarted_at:
        hashed["restartedAt"] = restarted_at  # `rollout restart`: as kubectl's annotation
    return L.spec_hash(hashed)[:TEMPLATE_HASH_LENGTH]


def pod_name(deployment: str, hash_: str, ordinal: int) -> str:
    return f"{deployment}-{hash_}-{ordinal}"


def pod_labels(template: Mapping[str, Any], hash_: str) -> dict[str, str]:
    """The template's labels and ``pod-template-hash``, as Kubernetes labels the pods."""
    return {**template_labels(template), L.POD_TEMPLATE_HASH: hash_}


@dataclass(frozen=True, slots=True)
class DeploymentSpec:
    """A Deployment as the rollout needs it: Kubernetes' defaults filled in, the strategy's
    limits in pods, and its template with the hash that names its revision."""

    ref: ObjectRef
    source: Location
    replicas: int
    selector: Mapping[str, Any]
    strategy: str  # "RollingUpdate" or "Recreate"
    max_surge: int
    max_unavailable: int
    surge_text: str  # as written (or defaulted): "25%", "1"
    unavailable_text: str
    min_ready: int
    deadline: int
    history_limit: int
    paused: bool
    template: Mapping[str, Any]
    template_hash: str
    labels: Mapping[str, str] = field(default_factory=dict)  # the Deployment's own

    def summary(self) -> dict[str, Any]:
        """What ``get deployments`` and ``rollout status`` show without the manifests: kept
        in the rollout's memory."""
        strategy: dict[str, Any] = {"type": self.strategy}
        if self.strategy == "RollingUpdate":
            strategy["rollingUpdate"] = {
                "maxSurge": self.surge_text,
                "maxUnavailable": self.unavailable_text,
            }
        return {
            "replicas": self.replicas,
            "selector": dict(self.selector),
            "strategy": strategy,
            "minReadySeconds": self.min_ready,
            "progressDeadlineSeconds": self.deadline,
            "revisionHistoryLimit": self.history_limit,
            "paused": self.paused,
            "source": str(self.source),
            "labels": dict(self.labels),
        }


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def deployment_spec(
    manifest: Manifest, settings: Settings, multi_host: bool, restarted_at: float = 0.0
) -> DeploymentSpec:
    """A valid Deployment manifest as a :class:`DeploymentSpec`."""
    spec = as_map(manifest.body.get("spec"))
    replicas = int(spec.get("replicas", 1))
    strategy = as_map(spec.get("strategy"))
    kind = str(strategy.get("type", "RollingUpdate"))
    rolling = as_map(strategy.get("rollingUpdate"))
    surge_value = rolling.get("maxSurge", DEFAULT_MAX_SURGE)
    unavailable_value = rolling.get("maxUnavailable", DEFAULT_MAX_UNAVAILABLE)
    if kind == "Recreate":
        surge, unavailable = 0, replicas
    else:
        surge, unavailable = fenceposts(surge_value, unavailable_value, replicas)
    template = as_map(spec.get("template"))
    return DeploymentSpec(
        ref=manifest.ref,
        source=manifest.source,
        replicas=replicas,
        selector=as_map(spec.get("selector")),
        strategy=kind,
        max_surge=surge,
        max_unavailable=unavailable,
        surge_text=_as_text(surge_value),
        unavailable_text=_as_text(unavailable_value),
        min_ready=int(spec.get("minReadySeconds", 0)),
        deadline=int(spec.get("progressDeadlineSeconds", DEFAULT_PROGRESS_DEADLINE)),
        history_limit=int(spec.get("revisionHistoryLimit", DEFAULT_HISTORY_LIMIT)),
        paused=bool(spec.get("paused", False)),
        template=template,
        template_hash=template_hash(template, settings, multi_host, restarted_at),
        labels={str(k): str(v) for k, v in manifest.labels.items()},
    )


@dataclass(frozen=True, slots=True)
class WantedPod:
    """One pod a rollout wants to exist now: of which revision, which ordinal, and, when it
    does not exist yet, why it is made (the plan says so)."""

    name: str
    template_hash: str
    ordinal: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class RolloutDecision:
    """What one step of a Deployment's rollout wants: the pods that should exist (old and
    new), the template of each revision among them, the live pods to leave exactly as they
    are (their template is not known any more), and why the others go."""

    pods: tuple[WantedPod, ...] = ()
    templates: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    kept: tuple[str, ...] = ()
    removals: Mapping[str, str] = field(default_factory=dict)


def steady_decision(spec: DeploymentSpec) -> RolloutDecision:
    """Every replica of the manifest's template: what a Deployment comes to when no rollout
    step says otherwise (``compute_desired`` without rollouts: tests, tools)."""
    hash_ = spec.template_hash
    return RolloutDecision(
        pods=tuple(
            WantedPod(pod_name(spec.ref.name, hash_, i), hash_, i) for i in range(spec.replicas)
        ),
        templates={hash_: spec.template},
    )
