"""The labels that mark what the reconciler owns, and the spec hash that detects drift.

Ownership is decided by labels alone: a container, volume or network is ours only when it
carries ``MANAGED_BY`` with our value *and* our ``INSTANCE`` name. Names are never trusted:
a foreign container called like one of ours is still foreign.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

PREFIX = "io.reconciler."
MANAGED_BY = PREFIX + "managed-by"
MANAGED_BY_VALUE = "reconciler"
INSTANCE = PREFIX + "instance"
OWNER_KIND = PREFIX + "owner-kind"
OWNER_NAMESPACE = PREFIX + "owner-namespace"
OWNER_NAME = PREFIX + "owner-name"
POD = PREFIX + "pod"
POD_NAMESPACE = PREFIX + "pod-namespace"
POD_LABELS = PREFIX + "pod-labels"  # the pod's own labels, as JSON, for -l selectors
CONTAINER = PREFIX + "container"  # the name in spec.containers, or INFRA_CONTAINER
ROLE = PREFIX + "role"  # "infra" or "app"
SPEC_HASH = PREFIX + "spec-hash"  # hash of the whole desired pod: drift means recreate
SPEC = PREFIX + "spec"  # the desired pod as canonical JSON: field-level diffs
REVISION = PREFIX + "revision"  # the source revision the object was created from
SOURCE = PREFIX + "source"  # file:line of the manifest
REPLICA = PREFIX + "replica"  # the ordinal of an RC replica
CLUSTER_IP = PREFIX + "cluster-ip"  # forwarders: the Service's address, kept while it lives
#: what a container's Docker health carries (docs/health.md): on an infra container
#: "readiness" (the pod's); on an app container the probes its health check runs, e.g.
#: "liveness,startup". Absent: the container has no health check.
HEALTH = PREFIX + "health"
PROBES = PREFIX + "probes"  # an app container's probes, by kind: "readiness,liveness"
RESTARTS = PREFIX + "restarts"  # how often the reconciler restarted this container
BACKOFF = PREFIX + "backoff"  # seconds this instance waited before its start (CrashLoopBackOff)
START_AFTER = PREFIX + "start-after"  # epoch seconds before which this instance must not start
FORWARDER = PREFIX + "forwarder"  # an endpoints record: the id of the forwarder it describes
ENDPOINTS = PREFIX + "endpoints"  # an endpoints record: what the forwarder was last given
CLAIM = PREFIX + "claim"  # a PersistentVolumeClaim's volume: the claim's name
CLAIM_NAMESPACE = PREFIX + "claim-namespace"
TEMPLATE_HASH = PREFIX + "template-hash"  # a Deployment's pod: the revision it runs
ROLLOUT = PREFIX + "rollout"  # a rollout marker: the Deployment's rollout memory, as JSON
GENERATION = PREFIX + "generation"  # a rollout marker: how many times it was written

INFRA_CONTAINER = "POD"
ROLE_INFRA = "infra"
ROLE_APP = "app"
ROLE_FORWARDER = "forwarder"  # a Service's forwarder on one host (a pod of its own)
ROLE_STATE = "state"  # a never-started marker container: the last applied revision
ROLE_ROLLOUT = "rollout"  # a never-started marker container: one Deployment's rollout memory
#: the pod label Kubernetes gives a Deployment's pods: the hash of their template
POD_TEMPLATE_HASH = "pod-template-hash"
ROLE_INIT = "init"  # an init container: runs to completion before the app containers
ROLE_ENDPOINTS = "endpoints"  # a never-started record: the endpoints a forwarder was given
ROLE_TOOLS = "tools"  # a never-started helper that fills the probe tools volume (a moment)
DEFAULT_INSTANCE = "default"


def ownership_filters(instance: str) -> list[str]:
    """Docker ``label`` filters selecting exactly the objects of one reconciler instance."""
    return [f"{MANAGED_BY}={MANAGED_BY_VALUE}", f"{INSTANCE}={instance}"]


def is_owned(labels: Mapping[str, str] | None, instance: str) -> bool:
    """True only for objects carrying both our managed-by label and our instance name."""
    if not labels:
        return False
    return labels.get(MANAGED_BY) == MANAGED_BY_VALUE and labels.get(INSTANCE) == instance


def canonical_json(value: Any) -> str:
    """Key-sorted, compact JSON: equal values always give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def spec_hash(value: Any) -> str:
    """A short, stable hash of a JSON-like value (compose's config-hash idea)."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()[:16]
