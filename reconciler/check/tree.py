"""Checks across objects: duplicate objects, nodePorts used twice, what each Service's
selector and targetPorts find among the pod templates.

They need every object at once, so they run on ``TreeFacts``, the few plain values they
need of each object, which worker processes (``parallel``) send back cheaply. ``finish``
runs them and puts all diagnostics in their final order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from reconciler.check.consumers import references
from reconciler.check.references import CONFIG_KINDS, check_references
from reconciler.core.model import (
    SUPPORTED_KINDS,
    Diagnostic,
    FieldPath,
    Location,
    Manifest,
    Severity,
    as_list,
    as_map,
    format_path,
    locate_path,
)
from reconciler.core.text import bounded, shown


class TreeFacts(NamedTuple):
    """What the checks across objects need of one object, and nothing more.

    Small plain values: worker processes (``parallel``) send these instead of
    whole manifests, whose positions make up most of their size (pickling 10,000 whole
    manifests cost more than a second core saved).
    """

    kind: str
    namespace: str
    name: str
    file: str
    position: tuple[int, int]
    #: the positions of the fields a diagnostic may point at, and of their ancestors
    positions: dict[FieldPath, tuple[int, int]]
    #: a pod template's labels (Pod, ReplicationController, Deployment), or a Service's
    #: selector
    labels: Mapping[str, Any]
    #: a pod template's container port names, or each Service port's
    #: (nodePort, protocol, targetPort)
    ports: tuple[Any, ...]
    #: a pod template's uses of Secrets, ConfigMaps and claims (``consumers.Reference``)
    refs: tuple[Any, ...] = ()
    #: a Secret's or ConfigMap's keys
    keys: frozenset[str] = frozenset()
    #: a Secret's type
    secret_type: str = ""

    @property
    def source(self) -> Location:
        return Location(self.file, *self.position)

    def locate(self, path: FieldPath) -> Location:
        """Where ``path`` was written, or its closest written ancestor (``Manifest.locate``)."""
        return locate_path(self.file, self.positions, path, self.source)

    def report(
        self, out: list[Diagnostic], severity: Severity, path: FieldPath, message: str
    ) -> None:
        out.append(
            Diagnostic(
                severity,
                self.locate(path),
                message,
                kind=self.kind,
                name=self.name,
                path=format_path(path),
            )
        )


_NAME_PATHS: tuple[FieldPath, ...] = (("metadata",), ("metadata", "name"))
_NO_TEMPLATES: frozenset[int] = frozenset()
_SERVICE_PATHS: tuple[FieldPath, ...] = (
    *_NAME_PATHS,
    ("spec",),
    ("spec", "selector"),
    ("spec", "ports"),
)


def tree_facts(manifest: Manifest) -> TreeFacts | None:
    """The facts ``check_facts`` needs of ``manifest``; None for an object it skips (a kind
    we do not read, or no name)."""
    kind, name = manifest.kind, manifest.name
    if kind not in SUPPORTED_KINDS or not name:
        return None
    body, positions = manifest.body, manifest.positions
    spec = as_map(body.get("spec"))
    if kind == "Service":
        ports = [as_map(port) for port in as_list(spec.get("ports"))]
        kept = {path: positions[path] for path in _SERVICE_PATHS if path in positions}
        for index in range(len(ports)):
            for path in (
                ("spec", "ports", index),
                ("spec", "ports", index, "nodePort"),
                ("spec", "ports", index, "targetPort"),
            ):
                if path in positions:
                    kept[path] = positions[path]
        return TreeFacts(
            kind,
            manifest.namespace,
            name,
            manifest.file,
            manifest.position,
            kept,
            as_map(spec.get("selector")),
            tuple(
                (port.get("nodePort"), port.get("protocol", "TCP"), port.get("targetPort"))
                for port in ports
            ),
        )
    if kind in CONFIG_KINDS:
        return config_facts(manifest)
    if kind == "Pod":
        labels, pod_spec = manifest.labels, spec
    else:  # a ReplicationController's or a Deployment's pod template
        template = as_map(spec.get("template"))
        labels = as_map(as_map(template.get("metadata")).get("labels"))
        pod_spec = as_map(template.get("spec"))
    refs = tuple(references(("spec",) if kind == "Pod" else ("spec", "template", "spec"), pod_spec))
    kept = {path: positions[path] for path in _NAME_PATHS if path in positions}
    for ref in refs:
        for end in range(len(ref.path), 0, -1):  # the closest written ancestor is enough
            if ref.path[:end] in positions:
                kept[ref.path[:end]] = positions[ref.path[:end]]
                break
    return TreeFacts(
        kind,
        manifest.namespace,
        name,
        manifest.file,
        manifest.position,
        kept,
        labels,
        tuple(
            port_name
            for container in as_list(pod_spec.get("containers"))
            for port in as_list(as_map(container).get("ports"))
            if isinstance(port_name := as_map(port).get("name"), str)
        ),
        refs,
    )


def config_facts(manifest: Manifest) -> TreeFacts:
    """A Secret's, ConfigMap's or claim's facts: its keys (and a Secret's type)."""
    body = manifest.body
    keys = frozenset(
        key
        for field_name in ("data", "stringData", "binaryData")
        for key in as_map(body.get(field_name))
    )
    secret_type = body.get("type", "Opaque") if manifest.kind == "Secret" else ""
    positions = manifest.positions
    return TreeFacts(
        manifest.kind,
        manifest.namespace,
        manifest.name,
        manifest.file,
        manifest.position,
        {path: positions[path] for path in _NAME_PATHS if path in positions},
        {},
        (),
        keys=keys,
        secret_type=secret_type if isinstance(secret_type, str) else "",
    )


def check_facts(facts: Iterable[TreeFacts | None], out: list[Diagnostic]) -> None:
    """The checks that need every object at once, on the objects' ``tree_facts`` (None for
    the objects they skip)."""
    seen: dict[tuple[str, str, str], TreeFacts] = {}
    for fact in facts:
        if fact is None:
            continue
        identity = (fact.kind, fact.namespace, fact.name)
        first = seen.get(identity)
        if first is not None:
            fact.report(
                out,
                Severity.ERROR,
                ("metadata", "name"),
                f"{fact.kind} {fact.namespace}/{fact.name} is defined twice: here and at "
                f"{first.source}",
            )
        else:
            seen[identity] = fact

    node_ports: dict[tuple[int, str], TreeFacts] = {}
    port_names: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[bool, frozenset[Any]]] = {}
    templates = [fact for fact in seen.values() if fact.kind != "Service"]
    # (namespace, label, value) -> templates carrying it: selectors match by intersection
    # instead of testing every Service against every template.
    by_label: dict[tuple[str, str, Any], set[int]] = {}
    for index, template in enumerate(templates):
        namespace = template.namespace
        for key, value in template.labels.items():
            if isinstance(value, str):  # others were reported by the schema (and unhashable)
                label = (namespace, key, value)
                holders = by_label.get(label)
                if holders is None:
                    by_label[label] = {index}
                else:
                    holders.add(index)
    for service in seen.values():
        if service.kind != "Service":
            continue
        for index, (node_port, protocol, _) in enumerate(service.ports):
            if isinstance(node_port, int) and node_port and isinstance(protocol, str):
                port_key = (node_port, protocol)
                other = node_ports.get(port_key)
                if other is not None:
                    service.report(
                        out,
                        Severity.ERROR,
                        ("spec", "ports", index, "nodePort"),
                        f"nodePort {node_port}/{protocol} is already used by Service "
                        f"{other.name} ({other.source})",
                    )
                else:
                    node_ports[port_key] = service
        selector = service.labels
        if not selector:
            continue
        # Services that select the same pods (many copies of one app) share one answer:
        # without it, N Services selecting the same N templates cost N * N.
        shape = (service.namespace, tuple(sorted((k, repr(v)) for k, v in selector.items())))
        defined = port_names.get(shape)
        if defined is None:
            defined = port_names[shape] = _selected_port_names(service, by_label, templates)
        if not defined[0]:
            wanted = bounded(",".join(f"{k}={v}" for k, v in selector.items()), 200)
            service.report(
                out,
                Severity.WARNING,
                ("spec", "selector"),
                f"selector {wanted} matches no Pod, ReplicationController or Deployment "
                f"template in namespace {service.namespace}",
            )
            continue
        for index, (_, _, target) in enumerate(service.ports):
            if isinstance(target, str) and target not in defined[1]:
                service.report(
                    out,
                    Severity.WARNING,
                    ("spec", "ports", index, "targetPort"),
                    f"no selected pod defines a container port named {shown(target)}",
                )
    check_references(seen.values(), out)


def _selected_port_names(
    service: TreeFacts,
    by_label: Mapping[tuple[str, str, Any], set[int]],
    templates: list[TreeFacts],
) -> tuple[bool, frozenset[Any]]:
    """Whether ``service``'s selector matches a template, and the port names they define."""
    matches: set[int] | frozenset[int] | None = None
    for key, value in service.labels.items():
        if not isinstance(value, str):
            return False, frozenset()
        found = by_label.get((service.namespace, key, value), _NO_TEMPLATES)
        matches = found if matches is None else matches & found
    chosen = matches or ()
    return bool(chosen), frozenset(name for i in chosen for name in templates[i].ports)


def finish(diagnostics: list[Diagnostic], facts: Iterable[TreeFacts | None]) -> list[Diagnostic]:
    """The last steps of ``validate``: the checks across objects, then drop repeats and sort.

    ``diagnostics`` holds the loading diagnostics, then every object's own, in file order;
    ``facts`` are the objects' ``tree_facts``. Returns them sorted by file and position.
    """
    check_facts(facts, diagnostics)
    unique = list(dict.fromkeys(diagnostics))  # jsonschema reports some problems twice
    unique.sort(key=Diagnostic.sort_key)
    return unique
