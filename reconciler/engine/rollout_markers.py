"""Pure: a Deployment's rollout markers as Docker sees them: the never-started container
that holds one generation of the rollout memory (``plan.rollout_memory``), its labels, and
the label filters that find every generation. Apart from ``engine.translate`` (which makes
pods) because a marker is no pod; ``engine.rollouts`` and the memory runtime use these.
"""

from __future__ import annotations

from reconciler.core import labels as L
from reconciler.core.model import ObjectRef
from reconciler.engine.translate import ownership_labels


def rollout_marker_name(instance: str, deployment: ObjectRef, generation: int) -> str:
    """The never-started container holding one generation of a Deployment's rollout memory
    (``plan.rollout_memory``). ``deploy_<name>`` cannot be a pod's name (pods have no
    ``_``), so it never collides with a pod's containers."""
    return f"{instance}_{deployment.namespace}_deploy_{deployment.name}_rollout-{generation}"


def rollout_marker_labels(
    instance: str, deployment: ObjectRef, memory: str, generation: int
) -> dict[str, str]:
    return {
        **ownership_labels(instance),
        L.ROLE: L.ROLE_ROLLOUT,
        L.OWNER_KIND: deployment.kind,
        L.OWNER_NAMESPACE: deployment.namespace,
        L.OWNER_NAME: deployment.name,
        L.ROLLOUT: memory,
        L.GENERATION: str(generation),
    }


def rollout_marker_filters(instance: str, deployment: ObjectRef) -> list[str]:
    """Docker ``label`` filters selecting every rollout marker of one Deployment."""
    return [
        *L.ownership_filters(instance),
        f"{L.ROLE}={L.ROLE_ROLLOUT}",
        f"{L.OWNER_NAMESPACE}={deployment.namespace}",
        f"{L.OWNER_NAME}={deployment.name}",
    ]
