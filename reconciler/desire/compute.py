"""From validated manifests to the pods that should run, and where. Pure.

A Pod becomes one DesiredPod; a ReplicationController becomes ``replicas`` pods named
``<rc>-<ordinal>``. Ordinals are stable identities: a rerun, a crash mid-apply or a restart
of the tool computes the same names, so it can never duplicate or lose a replica. A
Deployment becomes the pods its rollout's current step wants (``rollouts``, from
``plan.rollout``): ``<name>-<template hash>-<ordinal>``, old and new revisions side by side
while it rolls; without a step, every replica of its manifest's template.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from reconciler.core.model import HostState, Manifest, ObjectRef, as_map
from reconciler.desire.claims import claim_hosts, claims_of, pod_claims, storage_warnings
from reconciler.desire.config import config_index
from reconciler.desire.deployments import (
    TEMPLATE_SPEC_PATH,
    RolloutDecision,
    deployment_spec,
    pod_labels,
    steady_decision,
)
from reconciler.desire.forwarders import forwarders
from reconciler.desire.hostmemory import HostRecord
from reconciler.desire.placement import (
    Placer,
    claims_apart,
    held_pods,
    host_port_conflicts,
    pod_problem,
    unplaceable,
)
from reconciler.desire.pods import PodProblem, pod, spec_requests
from reconciler.desire.services import allocate
from reconciler.desire.settings import DesiredState, PodContext, Settings
from reconciler.desire.template import ReplicaTemplate
from reconciler.source.hosts import Host

#: a pod to place: its name, labels, pod spec, the spec's path in the manifest, its ordinal
_Candidate = tuple[str, Mapping[str, Any], Mapping[str, Any], tuple[str | int, ...], int | None]


def compute_desired(
    manifests: Iterable[Manifest],
    hosts: Sequence[Host],
    live: Mapping[str, HostState] | None = None,
    settings: Settings | None = None,
    host_memory: Mapping[str, HostRecord] | None = None,
    now: float = 0.0,
    rollouts: Mapping[ObjectRef, RolloutDecision] | None = None,
) -> DesiredState:
    """All pods that should run, placed on hosts. Manifests must already be valid.

    ``host_memory`` (hostmemory.remember) and ``now`` decide what an unreachable host keeps;
    ``rollouts`` says which pods each Deployment wants now (see ``plan.rollout``).
    """
    settings = settings or Settings()
    live = live or {}
    manifests = list(manifests)
    held, notes = held_pods(manifests, live, host_memory or {}, now, settings.host_grace)
    placer = Placer(hosts, live, held)
    state = DesiredState(host_notes=notes)
    network = settings.network
    state.services, service_problems = allocate(manifests, network, live)
    state.problems.extend(service_problems)
    claims = claims_of(manifests)
    state.claims = set(claims)
    ctx = PodContext(
        settings=settings,
        network=network,
        services=state.services,
        addresses={h.name: h.address for h in hosts},
        multi_host=len(hosts) > 1,
        configs=config_index(manifests),
        claims=claims,
        hosts={h.name: h for h in hosts},
    )
    claim_placed = claim_hosts(live)
    ordered = sorted(
        (m for m in manifests if m.kind in ("Pod", "ReplicationController", "Deployment")),
        key=lambda m: (m.namespace, m.name, m.kind),
    )
    # Bare pods first: they are pinned where they are; replicas can go anywhere.
    ordered.sort(key=lambda m: m.kind != "Pod")
    for manifest in ordered:
        owner = manifest.ref
        candidates: list[_Candidate]
        hashes: dict[str, str] = {}  # a Deployment's pod -> its revision's template hash
        replicas_of: ReplicaTemplate | None = None  # a controller's replicas, stamped
        if manifest.kind == "Deployment":
            decision = (rollouts or {}).get(owner) or steady_decision(
                deployment_spec(manifest, settings, ctx.multi_host)
            )
            state.deployments[owner] = int(as_map(manifest.body["spec"]).get("replicas", 1))
            candidates = _deployment_candidates(owner.namespace, decision, state)
            hashes = {p.name: p.template_hash for p in decision.pods}
        elif manifest.kind == "Pod":
            candidates = [
                (manifest.name, manifest.labels, as_map(manifest.body["spec"]), ("spec",), None)
            ]
        else:
            spec = as_map(manifest.body["spec"])
            template = as_map(spec["template"])
            labels = as_map(as_map(template.get("metadata")).get("labels"))
            replicas = int(spec.get("replicas", 1))
            state.replicas[owner] = replicas
            replicas_of = ReplicaTemplate(
                ctx, manifest, owner, labels, as_map(template["spec"]), ("spec", "template", "spec")
            )
            candidates = [
                (
                    f"{manifest.name}-{i}",
                    labels,
                    as_map(template["spec"]),
                    ("spec", "template", "spec"),
                    i,
                )
                for i in range(replicas)
            ]
        asked: Mapping[str, Any] | None = None  # what the spec asks for, once per spec
        for name, labels_of_pod, raw_spec, spec_path, replica in candidates:
            if raw_spec is not asked:  # replicas share one; a rollout's revisions do not
                asked = raw_spec
                cpu, memory = spec_requests(raw_spec)
                selector = as_map(raw_spec.get("nodeSelector"))
                node_selector = {str(k): str(v) for k, v in selector.items()}
                wanted = {(owner.namespace, c) for c in pod_claims(raw_spec)}
            pinned = {claim_placed[c] for c in wanted if c in claim_placed} if wanted else set()
            if len(pinned) > 1:
                state.problems.append(
                    claims_apart(manifest, name, sorted(c for _, c in wanted), spec_path)
                )
                continue
            if pinned:  # a claim's volume is on one host: its pods go there
                placer.pinned.setdefault((owner.namespace, name), pinned.pop())
            host = placer.place((owner.namespace, name), node_selector, cpu, memory)
            if host is None:
                state.problems.append(
                    unplaceable(manifest, name, node_selector, spec_path, placer.any_reachable())
                )
                continue
            for claim in wanted:
                claim_placed.setdefault(claim, host)
            try:
                if replicas_of is not None:
                    made = replicas_of.pod(name, host, replica)
                else:
                    made = pod(
                        ctx,
                        manifest,
                        owner,
                        name,
                        labels_of_pod,
                        raw_spec,
                        spec_path,
                        host,
                        replica,
                    )
            except PodProblem as exc:
                state.problems.append(pod_problem(manifest, name, exc))
                continue
            if name in hashes:
                made = dataclasses.replace(made, template_hash=hashes[name])
            state.pods.append(made)
    state.pods.extend(forwarders(ctx, hosts, live))
    state.problems.extend(host_port_conflicts(state.pods))
    state.problems.extend(storage_warnings(claims, claim_placed, hosts))
    return state


def _deployment_candidates(
    namespace: str, decision: RolloutDecision, state: DesiredState
) -> list[_Candidate]:
    """The pods a rollout step wants, each from its revision's template; the reasons the
    plan gives for them, and the pods the step keeps as they are, go into ``state``."""
    candidates: list[_Candidate] = []
    for wanted in decision.pods:
        template = decision.templates.get(wanted.template_hash)
        if template is None:  # a revision whose template is lost: leave its pod alone
            state.kept.add((namespace, wanted.name))
            continue
        if wanted.reason:
            state.reasons[(namespace, wanted.name)] = wanted.reason
        candidates.append(
            (
                wanted.name,
                pod_labels(template, wanted.template_hash),
                as_map(template.get("spec")),
                TEMPLATE_SPEC_PATH,
                wanted.ordinal,
            )
        )
    state.kept.update((namespace, name) for name in decision.kept)
    for name, why in decision.removals.items():
        state.removal_reasons[(namespace, name)] = why
    return candidates
