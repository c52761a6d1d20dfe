"""How many pods the manifests ask of one instance, against the operator's ``--max-pods``.
Pure.

``replicas`` is an int32 (``check``), so a single commit may still ask for two billion
pods: planning them would exhaust memory long before a host refused. So the count is taken
from the manifests themselves, before any pod is computed, and a tree past the budget is
refused like an invalid one: an error at the object that crossed it, nothing applied.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from reconciler.core.model import Diagnostic, FieldPath, Manifest, Severity, as_map

#: The default of ``--max-pods``: far more than a handful of Docker hosts run.
DEFAULT_MAX_PODS = 1000


def _rc_pods(manifest: Manifest) -> tuple[int, FieldPath]:
    replicas = as_map(manifest.body.get("spec")).get("replicas", 1)
    count = replicas if isinstance(replicas, int) and not isinstance(replicas, bool) else 0
    return max(count, 0), ("spec", "replicas")


#: How many pods an object of each kind runs, and the field that says so (a kind that runs
#: pods adds its own).
POD_COUNTS: dict[str, Callable[[Manifest], tuple[int, FieldPath]]] = {
    "Pod": lambda manifest: (1, ("metadata", "name")),
    "ReplicationController": _rc_pods,
    "Deployment": _rc_pods,  # its replicas; a rollout's surge comes and goes
}


def pod_budget(manifests: Iterable[Manifest], max_pods: int) -> list[Diagnostic]:
    """An error at the first object (in file order) that takes the pods past ``max_pods``;
    none when the manifests fit."""
    total = 0
    crossing: tuple[Manifest, FieldPath] | None = None
    for manifest in manifests:
        count_of = POD_COUNTS.get(manifest.kind)
        if count_of is None:
            continue
        count, path = count_of(manifest)
        total += count
        if total > max_pods and crossing is None:
            crossing = (manifest, path)
    if crossing is None:
        return []
    manifest, path = crossing
    return [
        Diagnostic(
            Severity.ERROR,
            manifest.locate(path),
            f"the manifests ask for {total:,} pods in all, more than --max-pods {max_pods:,} "
            "(this object takes them past it): nothing is applied",
            kind=manifest.kind,
            name=manifest.name,
            path=".".join(str(p) for p in path),
        )
    ]
