"""Reading live containers back into pods: grouped by pod, their owner, the spec and labels
they were created with, whether a stopped one should restart. Pure.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from reconciler.core import health
from reconciler.core import labels as L
from reconciler.core.model import LiveContainer, ObjectRef
from reconciler.core.redact import redact_spec

_EXIT_CODE = re.compile(r"Exited \((-?\d+)\)")


def exit_code(container: LiveContainer) -> int | None:
    if container.exit_code is not None:
        return container.exit_code
    match = _EXIT_CODE.search(container.status)
    return int(match[1]) if match else None


def should_restart(policy: str, container: LiveContainer) -> bool:
    """Kubernetes' restartPolicy applied to a container that is not running."""
    if container.state in ("running", "restarting"):
        return False
    if policy == "Always":
        return True
    if policy == "OnFailure":
        code = exit_code(container)
        return container.state == "created" or code is None or code != 0
    return container.state == "created"  # Never: only start what never ran


def live_spec(containers: Iterable[LiveContainer]) -> dict[str, Any] | None:
    for c in containers:
        if c.labels.get(L.ROLE) in (L.ROLE_INFRA, L.ROLE_FORWARDER) and c.labels.get(L.SPEC):
            try:
                spec = json.loads(c.labels[L.SPEC])
            except ValueError:
                return None
            found = spec.get("spec") if isinstance(spec, dict) else None
            # as the desired spec holds them: an older label may keep secrets in clear
            return redact_spec(found) if isinstance(found, dict) else None
    return None


def live_labels(containers: Iterable[LiveContainer]) -> dict[str, str] | None:
    """The pod labels the live pod was created with, or None when they were not recorded."""
    for c in containers:
        raw = c.labels.get(L.POD_LABELS)
        if raw is None:
            continue
        try:
            value = json.loads(raw)
        except ValueError:
            return None
        return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else None
    return None


def owner_of(containers: Iterable[LiveContainer]) -> ObjectRef:
    for c in containers:
        return ObjectRef(
            c.labels.get(L.OWNER_KIND, "Pod"),
            c.labels.get(L.OWNER_NAMESPACE, c.labels.get(L.POD_NAMESPACE, "default")),
            c.labels.get(L.OWNER_NAME, c.labels.get(L.POD, "")),
        )
    return ObjectRef("Pod", "default", "")


def group_pods(containers: Iterable[LiveContainer]) -> dict[tuple[str, str], list[LiveContainer]]:
    """Live containers by (namespace, pod), in a stable order."""
    pods: dict[tuple[str, str], list[LiveContainer]] = {}
    for c in sorted(containers, key=lambda c: (c.labels.get(L.CONTAINER, ""), c.id)):
        key = (c.labels.get(L.POD_NAMESPACE, ""), c.labels.get(L.POD, ""))
        pods.setdefault(key, []).append(c)
    return pods


def pod_ready(containers: Iterable[LiveContainer]) -> bool:
    """Whether a live pod (all its containers, from one list call) is ready: infra and app
    containers running, no liveness or startup probe failing, and its readiness probes
    passing. The same answer Service endpoints use (``core.health.pod_ready``, where the
    rules are; docs/health.md)."""
    return health.pod_ready(containers)
