"""Which fields of a pod changed, by path: what a recreate says in ``diff`` and ``apply``. Pure.

Containers are matched by name and env vars by variable name, so a reordered list is not a
change; the spec hash also covers the pod's labels and infra image, and :func:`drift` names
those when the spec alone does not explain a new hash.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.core import labels as L
from reconciler.core.model import DesiredPod, LiveContainer
from reconciler.plan.live import live_labels
from reconciler.plan.model import FieldChange


def _env_map(container: Mapping[str, Any]) -> dict[str, str]:
    return {str(e.get("name")): str(e.get("value")) for e in container.get("env", [])}


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(item, f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for index, item in enumerate(value):
            _flatten(item, f"{prefix}[{index}]", out)
    else:
        out[prefix] = value


def field_changes(
    old_spec: Mapping[str, Any] | None, new_spec: Mapping[str, Any]
) -> tuple[FieldChange, ...]:
    """Which fields differ, by path; containers matched by name and env by variable name."""
    if not old_spec:
        return (FieldChange("spec", "(unknown: created by another version)", "(new spec)"),)
    changes: list[FieldChange] = []
    old_containers = {c.get("name"): c for c in old_spec.get("containers", [])}
    new_containers = {c.get("name"): c for c in new_spec.get("containers", [])}
    for name in sorted(set(old_containers) | set(new_containers), key=str):
        old, new = old_containers.get(name), new_containers.get(name)
        base = f"containers[{name}]"
        if old is None or new is None:
            changes.append(
                FieldChange(
                    base,
                    "absent" if old is None else "present",
                    "absent" if new is None else "present",
                )
            )
            continue
        old_env, new_env = _env_map(old), _env_map(new)
        for var in sorted(set(old_env) | set(new_env)):
            if old_env.get(var) != new_env.get(var):
                changes.append(FieldChange(f"{base}.env.{var}", old_env.get(var), new_env.get(var)))
        flat_old: dict[str, Any] = {}
        flat_new: dict[str, Any] = {}
        _flatten({k: v for k, v in old.items() if k != "env"}, base, flat_old)
        _flatten({k: v for k, v in new.items() if k != "env"}, base, flat_new)
        for path in sorted(set(flat_old) | set(flat_new)):
            if flat_old.get(path) != flat_new.get(path):
                changes.append(FieldChange(path, flat_old.get(path), flat_new.get(path)))
    flat_old, flat_new = {}, {}
    _flatten({k: v for k, v in old_spec.items() if k != "containers"}, "", flat_old)
    _flatten({k: v for k, v in new_spec.items() if k != "containers"}, "", flat_new)
    for path in sorted(set(flat_old) | set(flat_new)):
        if flat_old.get(path) != flat_new.get(path):
            changes.append(FieldChange(path, flat_old.get(path), flat_new.get(path)))
    return tuple(changes)


def drift(
    live: list[LiveContainer], pod: DesiredPod, *, explained: bool
) -> tuple[FieldChange, ...]:
    """What differs besides the spec: the hash also covers pod labels and the infra image.

    The image Docker lists can be an image ID (a re-tagged image), so the infra image is
    named only when nothing else explains the new hash.
    """
    changes: list[FieldChange] = []
    old_labels = live_labels(live)
    if old_labels is not None:
        for key in sorted(set(old_labels) | set(pod.labels)):
            if old_labels.get(key) != pod.labels.get(key):
                changes.append(
                    FieldChange(f"metadata.labels.{key}", old_labels.get(key), pod.labels.get(key))
                )
    infra = next((c for c in live if c.labels.get(L.ROLE) == L.ROLE_INFRA), None)
    if not (explained or changes) and infra is not None and infra.image != pod.containers[0].image:
        changes.append(FieldChange("infraImage", infra.image, pod.containers[0].image))
    return tuple(changes)
