"""A live container's health and restarts, and a live pod's readiness, read from what one
``GET /containers/json`` lists: its labels, its state, and the status text Docker appends
``(healthy)``, ``(unhealthy)`` or ``(health: starting)`` to. Pure.

Why in ``core``: Service endpoints (``desire``), plans (``plan``) and ``get`` (``render``)
all ask whether a pod is ready, and must agree. docs/health.md explains what each health
check carries: an app container's Docker health is its liveness (and startup); the infra
container's is the readiness of the whole pod.
"""

from __future__ import annotations

from collections.abc import Iterable

from reconciler.core import labels as L
from reconciler.core.model import LiveContainer

HEALTHY, UNHEALTHY, STARTING = "healthy", "unhealthy", "starting"


def health_status(container: LiveContainer) -> str:
    """``healthy``, ``unhealthy``, ``starting``, or ``""`` without a health check."""
    status = container.status
    if status.endswith("(healthy)"):
        return HEALTHY
    if status.endswith("(unhealthy)"):
        return UNHEALTHY
    if status.endswith("(health: starting)"):
        return STARTING
    return ""


def health_carries(container: LiveContainer) -> frozenset[str]:
    """What the container's health check reports: ``readiness`` (an infra container, for
    its pod), or the probes an app container's check runs (``liveness``, ``startup``,
    ``readiness`` for an exec readiness probe). Empty: no health check."""
    raw = container.labels.get(L.HEALTH, "")
    return frozenset(part for part in raw.split(",") if part)


def _number(container: LiveContainer, key: str) -> float:
    try:
        return float(container.labels.get(key, "0"))
    except ValueError:
        return 0.0


def restarts(container: LiveContainer) -> int:
    """How often the reconciler restarted this container (a label of each new instance)."""
    return int(_number(container, L.RESTARTS))


def backoff(container: LiveContainer) -> int:
    """The back-off (seconds) this instance was made with: the next one doubles it."""
    return int(_number(container, L.BACKOFF))


def start_after(container: LiveContainer) -> float:
    """Epoch seconds before which this instance must not be started (0: any time)."""
    return _number(container, L.START_AFTER)


def backing_off(container: LiveContainer, now: float) -> bool:
    """A container the reconciler restarted but holds back (Kubernetes' CrashLoopBackOff):
    created, not yet started, its start still in the future."""
    return container.state == "created" and start_after(container) > now


def is_alive(container: LiveContainer) -> bool:
    """Running, and not failing its liveness (or startup) probe."""
    return container.running and health_status(container) != UNHEALTHY


def _role(container: LiveContainer) -> str:
    return container.labels.get(L.ROLE, "")


def pod_ready(containers: Iterable[LiveContainer]) -> bool:
    """Whether a live pod may receive traffic: its infra and every app container run, no
    app container fails its liveness or startup probe, none whose readiness or startup
    the pod waits for has not been checked yet, and, when the pod has readiness or startup
    probes, its infra container's health (the pod's readiness) is ``healthy``.

    Init containers, forwarders and records are not part of the answer: completed init
    containers have exited, and a pod only has app containers once they all completed.
    """
    infra: LiveContainer | None = None
    apps: list[LiveContainer] = []
    for container in containers:
        role = _role(container)
        if role == L.ROLE_INFRA:
            infra = container
        elif role == L.ROLE_APP:
            apps.append(container)
    if infra is None or not infra.running or not apps:
        return False
    for app in apps:
        if not is_alive(app):
            return False
        if health_status(app) == STARTING and health_carries(app) & {"startup", "readiness"}:
            return False  # not checked yet since it (re)started: what it says is unknown
    if "readiness" in health_carries(infra):
        return health_status(infra) == HEALTHY
    return True


def container_ready(container: LiveContainer, pod_is_ready: bool) -> bool:
    """One app container's readiness, as ``get`` shows it (``READY 2/3``): alive, and, for
    a container with readiness or startup probes, its pod ready (the pod's readiness is one
    health status: the infra's; docs/health.md)."""
    if not is_alive(container):
        return False
    probed = container.labels.get(L.PROBES, "")
    return pod_is_ready or not ({"readiness", "startup"} & set(probed.split(",")))
