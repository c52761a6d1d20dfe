"""What a pod spec takes from elsewhere: env ``valueFrom`` and ``envFrom``, the volumes of
Secrets, ConfigMaps, the downward API and claims. Checks of one pod spec (``check_uses``)
and the references it makes (``references``), which ``references`` of the tree checks
against the Secrets, ConfigMaps and claims defined.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

from reconciler.check.config import config_key
from reconciler.check.report import Reporter
from reconciler.core import names
from reconciler.core.model import FieldPath, as_list, as_map, pod_containers

#: fieldRef paths the reconciler resolves in env vars (labels and annotations by key)
ENV_FIELDS = (
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "status.podIP",
    "status.hostIP",
)
#: fieldRef paths of downwardAPI files (whole label and annotation maps as well)
FILE_FIELDS = ("metadata.name", "metadata.namespace", "metadata.labels", "metadata.annotations")
_BY_KEY = re.compile(r"^metadata\.(labels|annotations)\['([^']*)'\]$")


class Reference(NamedTuple):
    """One use of a Secret, ConfigMap or claim by a pod: ``key`` is "" for a whole object."""

    kind: str  # Secret, ConfigMap or PersistentVolumeClaim
    name: str
    key: str
    optional: bool
    path: FieldPath  # where the name (or key) is written
    image_pull: bool = False  # an imagePullSecrets entry


def field_path_problem(field_path: str, *, in_file: bool) -> str | None:
    match = _BY_KEY.match(field_path)
    if match:
        return names.qualified_name(match[2])
    allowed = FILE_FIELDS if in_file else ENV_FIELDS
    if field_path in allowed:
        return None
    shown = ", ".join(allowed) + ", metadata.labels['KEY'], metadata.annotations['KEY']"
    return f"fieldPath {field_path!r} is not supported here (supported: {shown})"


def _check_items(report: Reporter, path: FieldPath, items: Any) -> None:
    seen: dict[str, int] = {}
    for index, item in enumerate(as_list(items)):
        target = as_map(item).get("path")
        at = path + (index, "path")
        if not isinstance(target, str):
            continue
        parts = target.split("/")
        if not target or target.startswith("/") or ".." in parts or "" in parts:
            report.error(at, "must be a relative path without '..' or empty parts")
        elif target in seen:
            report.error(at, f"path {target!r} is also items[{seen[target]}]")
        seen.setdefault(target, index)
        key = as_map(item).get("key")
        if isinstance(key, str) and config_key(key):
            report.error(path + (index, "key"), f"key {key!r} {config_key(key)}")


def _check_downward(report: Reporter, path: FieldPath, items: Any, containers: set[str]) -> None:
    _check_items(report, path, items)
    for index, item in enumerate(as_list(items)):
        item = as_map(item)
        sources = [k for k in ("fieldRef", "resourceFieldRef") if k in item]
        if len(sources) != 1:
            report.error(path + (index,), "needs exactly one of fieldRef or resourceFieldRef")
        field_path = as_map(item.get("fieldRef")).get("fieldPath")
        if isinstance(field_path, str):
            problem = field_path_problem(field_path, in_file=True)
            if problem:
                report.error(path + (index, "fieldRef", "fieldPath"), problem)
        resource = as_map(item.get("resourceFieldRef"))
        if resource:
            name = resource.get("containerName")
            at = path + (index, "resourceFieldRef", "containerName")
            if not isinstance(name, str) or not name:
                report.error(at, "a downwardAPI file needs the containerName of the resource")
            elif name not in containers:
                report.error(at, f"no container named {name!r} in this pod")


def check_uses(report: Reporter, path: FieldPath, spec: Mapping[str, Any]) -> None:
    """Checks of one pod spec's env sources and volume sources."""
    containers = {
        str(as_map(c).get("name")) for c in as_list(spec.get("containers")) if as_map(c).get("name")
    }
    for at, container in pod_containers(spec):
        cpath = path + at
        for index, env in enumerate(as_list(as_map(container).get("env"))):
            env = as_map(env)
            value_from = as_map(env.get("valueFrom"))
            epath = cpath + ("env", index)
            if "valueFrom" not in env:
                continue
            if "value" in env:
                report.error(epath + ("value",), "value and valueFrom cannot both be set")
            if len(value_from) != 1:
                report.error(epath + ("valueFrom",), "needs exactly one source")
            field_path = as_map(value_from.get("fieldRef")).get("fieldPath")
            if isinstance(field_path, str):
                problem = field_path_problem(field_path, in_file=False)
                if problem:
                    report.error(epath + ("valueFrom", "fieldRef", "fieldPath"), problem)
            target = as_map(value_from.get("resourceFieldRef")).get("containerName")
            if isinstance(target, str) and target and target not in containers:
                report.error(
                    epath + ("valueFrom", "resourceFieldRef", "containerName"),
                    f"no container named {target!r} in this pod",
                )
        for index, source in enumerate(as_list(as_map(container).get("envFrom"))):
            source = as_map(source)
            if len([k for k in ("configMapRef", "secretRef") if k in source]) != 1:
                report.error(
                    cpath + ("envFrom", index), "needs exactly one of configMapRef or secretRef"
                )
    for vindex, volume in enumerate(as_list(spec.get("volumes"))):
        volume = as_map(volume)
        vpath = path + ("volumes", vindex)
        for kind in ("secret", "configMap"):
            _check_items(report, vpath + (kind, "items"), as_map(volume.get(kind)).get("items"))
        downward = as_map(volume.get("downwardAPI"))
        if downward:
            _check_downward(
                report, vpath + ("downwardAPI", "items"), downward.get("items"), containers
            )
        for sindex, source in enumerate(as_list(as_map(volume.get("projected")).get("sources"))):
            source = as_map(source)
            spath = vpath + ("projected", "sources", sindex)
            if len(source) != 1:
                report.error(spath, "each projected source needs exactly one kind of source")
            for kind in ("secret", "configMap"):
                _check_items(report, spath + (kind, "items"), as_map(source.get(kind)).get("items"))
            if "downwardAPI" in source:
                _check_downward(
                    report,
                    spath + ("downwardAPI", "items"),
                    as_map(source["downwardAPI"]).get("items"),
                    containers,
                )


def _ref(
    kind: str, source: Mapping[str, Any], name_field: str, path: FieldPath
) -> Iterator[Reference]:
    name = source.get(name_field)
    if isinstance(name, str):
        optional = bool(source.get("optional", False))
        yield Reference(kind, name, "", optional, path + (name_field,))
        for index, item in enumerate(as_list(source.get("items"))):
            key = as_map(item).get("key")
            if isinstance(key, str):
                yield Reference(kind, name, key, optional, path + ("items", index, "key"))


def references(path: FieldPath, spec: Mapping[str, Any]) -> Iterator[Reference]:
    """Every Secret, ConfigMap, key and claim a pod spec uses, with where it is written."""
    for at, container in pod_containers(spec):
        cpath = path + at
        for index, env in enumerate(as_list(as_map(container).get("env"))):
            value_from = as_map(as_map(env).get("valueFrom"))
            for field_name, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
                ref = as_map(value_from.get(field_name))
                name, key = ref.get("name"), ref.get("key")
                if isinstance(name, str) and isinstance(key, str):
                    at = cpath + ("env", index, "valueFrom", field_name)
                    yield Reference(kind, name, key, bool(ref.get("optional")), at + ("key",))
        for index, source in enumerate(as_list(as_map(container).get("envFrom"))):
            for field_name, kind in (("secretRef", "Secret"), ("configMapRef", "ConfigMap")):
                ref = as_map(as_map(source).get(field_name))
                at = cpath + ("envFrom", index, field_name)
                yield from _ref(kind, ref, "name", at)
    for vindex, volume in enumerate(as_list(spec.get("volumes"))):
        volume = as_map(volume)
        vpath = path + ("volumes", vindex)
        yield from _ref("Secret", as_map(volume.get("secret")), "secretName", vpath + ("secret",))
        yield from _ref(
            "ConfigMap", as_map(volume.get("configMap")), "name", vpath + ("configMap",)
        )
        for sindex, source in enumerate(as_list(as_map(volume.get("projected")).get("sources"))):
            spath = vpath + ("projected", "sources", sindex)
            source = as_map(source)
            yield from _ref("Secret", as_map(source.get("secret")), "name", spath + ("secret",))
            yield from _ref(
                "ConfigMap", as_map(source.get("configMap")), "name", spath + ("configMap",)
            )
        claim = as_map(volume.get("persistentVolumeClaim")).get("claimName")
        if isinstance(claim, str):
            at = vpath + ("persistentVolumeClaim", "claimName")
            yield Reference("PersistentVolumeClaim", claim, "", False, at)
    for index, entry in enumerate(as_list(spec.get("imagePullSecrets"))):
        name = as_map(entry).get("name")
        if isinstance(name, str):
            at = path + ("imagePullSecrets", index, "name")
            yield Reference("Secret", name, "", False, at, image_pull=True)
