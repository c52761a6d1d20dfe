"""Validate loaded manifests: JSON Schemas from ``schemas/``, then what the API server checks.

Three passes, all reporting every problem (never stopping at the first):

1. shape: apiVersion and kind are ones we read (old v1beta shapes get a migration hint);
2. schema: the kind's JSON Schema. Unknown fields are errors (typos such as ``contianers``);
   fields Kubernetes knows but the reconciler does not act on carry ``x-unhonoured`` in the
   schema and become warnings naming the field;
3. semantics: names, label syntax, duplicates, port ranges, selectors — per object, then
   across the whole tree (duplicate objects, nodePorts, what Services select).

Pure: values in, diagnostics out.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from reconciler.check.compiler import Compiler, Issue
from reconciler.core import names
from reconciler.core.errors import QuantityError, UnsupportedSchema
from reconciler.core.model import (
    SUPPORTED_KINDS,
    Diagnostic,
    FieldPath,
    Location,
    Manifest,
    Severity,
    format_path,
    locate_path,
)
from reconciler.core.quantity import is_quantity_syntax, parse_quantity
from reconciler.source.load import LoadResult

if TYPE_CHECKING:
    from jsonschema import ValidationError

SCHEMA_FILES = {
    "Pod": "pod.json",
    "ReplicationController": "replicationcontroller.json",
    "Service": "service.json",
}
NODE_PORT_RANGE = (30000, 32767)

#: Hints for fields that exist in older API shapes or are common slips.
_FIELD_HINTS: dict[str, str] = {
    "id": "metadata.name (top-level 'id' is from v1beta1/v1beta3)",
    "desiredState": "spec (desiredState is from v1beta1)",
    "portalIP": "spec.clusterIP (portalIP is from v1beta1/v1beta3)",
    "containerPort": "targetPort (in a Service port, the backend port is targetPort)",
}

_OLD_API_HINTS = {
    "v1beta1": (
        "apiVersion {v} is the 2014 API shape, which the reconciler does not read; rewrite "
        "the object as apiVersion: v1: 'id' -> metadata.name, 'labels' -> metadata.labels, "
        "'desiredState.manifest.containers' -> spec.containers (Pod), "
        "'desiredState.replicas'/'replicaSelector'/'podTemplate' -> "
        "spec.replicas/spec.selector/spec.template (ReplicationController), "
        "'port'/'containerPort'/'selector'/'publicIPs' -> spec.ports[].port/"
        "spec.ports[].targetPort/spec.selector/spec.externalIPs (Service)"
    ),
    "v1beta3": (
        "apiVersion {v} is not read by the reconciler; change it to apiVersion: v1 and move "
        "any top-level 'id' to metadata.name; in Services use spec.externalIPs instead of "
        "spec.publicIPs and spec.clusterIP instead of portalIP"
    ),
}
_OLD_API_HINTS["v1beta2"] = _OLD_API_HINTS["v1beta1"]


# -- results ------------------------------------------------------------------------------
@dataclass
class ValidationResult:
    """All objects found, and every error and warning about them, sorted by position."""

    manifests: list[Manifest] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.is_error]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if not d.is_error]

    @property
    def valid(self) -> bool:
        return not any(d.is_error for d in self.diagnostics)


# -- schemas ------------------------------------------------------------------------------
def schema_dir() -> Path:
    """Where the JSON Schemas live: inside an installed wheel, or the source checkout."""
    package = Path(__file__).resolve().parent.parent  # reconciler/
    for candidate in (package / "schemas", package.parent / "schemas"):
        if (candidate / "v1" / "_defs.json").is_file():
            return candidate
    raise FileNotFoundError("the reconciler's schemas/ directory is missing from this install")


@cache
def _validator_class() -> Any:
    """``jsonschema``'s 2020-12 validator, taught the ``x-unhonoured`` keyword.

    Built on first use: importing ``jsonschema`` (and ``referencing``, ``attrs``, ``rpds``)
    is a large share of the command's start-up, and validation needs it only for a schema
    the compiler cannot handle, which none of ours is.
    """
    from jsonschema import Draft202012Validator, ValidationError, validators

    def unhonoured(
        validator: Any, why: str, instance: Any, schema: Mapping[str, Any]
    ) -> Iterator[ValidationError]:
        yield ValidationError(why)

    return validators.extend(  # type: ignore[no-untyped-call]
        Draft202012Validator, {"x-unhonoured": unhonoured}
    )


def __getattr__(name: str) -> Any:
    """``_Validator`` (the reference validator class) is made when first asked for."""
    if name == "_Validator":
        return _validator_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


SchemaCheck = Callable[[Mapping[str, Any]], list[Any]]


@cache
def schema_documents() -> dict[str, dict[str, Any]]:
    """Every schema under ``schemas/v1``, keyed by its ``$id``."""
    documents: dict[str, dict[str, Any]] = {}
    for path in sorted((schema_dir() / "v1").glob("*.json")):
        contents = json.loads(path.read_text(encoding="utf-8"))
        documents[contents["$id"]] = contents
    return documents


def schema_id(kind: str) -> str:
    return next(
        schema_id
        for schema_id in schema_documents()
        if schema_id.rsplit("/", 1)[-1] == SCHEMA_FILES[kind]
    )


def reference_validator(kind: str) -> Any:
    """The ``jsonschema`` validator for ``kind``: the reference the compiled checks follow."""
    from referencing import Registry, Resource

    registry: Registry[Any] = Registry().with_resources(
        (sid, Resource.from_contents(doc)) for sid, doc in schema_documents().items()
    )
    return _validator_class()(schema_documents()[schema_id(kind)], registry=registry)


@cache
def _schema_checks() -> dict[str, SchemaCheck]:
    """One checker per kind: compiled where possible, ``jsonschema`` otherwise."""
    compiler = Compiler(schema_documents())
    checks: dict[str, SchemaCheck] = {}
    for kind in SCHEMA_FILES:
        try:
            compiled = compiler.compile(schema_id(kind))
        except UnsupportedSchema:
            validator = reference_validator(kind)

            def run_reference(body: Mapping[str, Any], v: Any = validator) -> list[Any]:
                return list(v.iter_errors(body))

            checks[kind] = run_reference
            continue

        def run(body: Mapping[str, Any], check: Any = compiled) -> list[Any]:
            out: list[Issue] = []
            check(body, (), out)
            return out

        checks[kind] = run
    return checks


# -- diagnostics helpers ------------------------------------------------------------------
class _Reporter:
    """Collects diagnostics about one manifest, locating each field path in its source."""

    def __init__(self, manifest: Manifest, out: list[Diagnostic]) -> None:
        self.manifest = manifest
        self.out = out
        self.kind = manifest.kind
        self.name = manifest.name

    def add(self, severity: Severity, path: FieldPath, message: str) -> None:
        self.out.append(
            Diagnostic(
                severity,
                self.manifest.locate(path),
                message,
                kind=self.kind,
                name=self.name,
                path=format_path(path),
            )
        )

    def error(self, path: FieldPath, message: str) -> None:
        self.add(Severity.ERROR, path, message)

    def warn(self, path: FieldPath, message: str) -> None:
        self.add(Severity.WARNING, path, message)

    def check_name(self, path: FieldPath, value: Any, rule: Callable[[str], str | None]) -> None:
        if isinstance(value, str):
            problem = rule(value)
            if problem:
                self.error(path, f"{value!r} {problem}")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "mapping"


_TYPE_WORDS = {"object": "mapping", "array": "list"}


def _schema_diagnostics(report: _Reporter, error: Issue | ValidationError) -> None:
    """Turn one jsonschema error into messages a person can act on."""
    path: FieldPath = tuple(error.absolute_path)
    keyword = error.validator
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    instance = error.instance
    value: Any = error.validator_value
    if keyword == "x-unhonoured":
        report.warn(path, f"field {path[-1]!r} is not honoured: {error.message}")
    elif keyword == "additionalProperties" and isinstance(instance, Mapping):
        known = sorted(schema.get("properties", {}))
        for key in instance:
            if key in known:
                continue
            hint = _FIELD_HINTS.get(key)
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
            message = f"unknown field {key!r}"
            if hint:
                message += f": use {hint}"
            elif close:
                message += f": did you mean {close[0]!r}?"
            elif known:
                message += f" (known fields here: {', '.join(known)})"
            report.error(path + (key,), message)
    elif keyword == "required" and isinstance(instance, Mapping):
        for key in value:
            if key not in instance:
                report.error(path + (key,), f"missing required field {key!r}")
    elif keyword == "type":
        wanted = value if isinstance(value, list) else [value]
        words = " or ".join(_TYPE_WORDS.get(str(w), str(w)) for w in wanted)
        actual = _json_type(instance)
        message = f"expected {words}, got {actual}"
        if "string" in wanted and actual in ("integer", "number", "boolean"):
            message += f' {json.dumps(instance)} (quote it: "{json.dumps(instance)}")'
        elif schema.get("x-expected"):
            message = f"expected {schema['x-expected']}, got {actual}"
        report.error(path, message)
    elif keyword == "enum":
        options = ", ".join(repr(v) if v == "" else str(v) for v in value)
        report.error(path, f"must be one of {options}; got {instance!r}")
    elif keyword == "const":
        report.error(path, f"must be {error.validator_value!r}; got {instance!r}")
    elif keyword in ("minimum", "maximum"):
        low, high = schema.get("minimum"), schema.get("maximum")
        if low is not None and high is not None:
            report.error(path, f"must be between {low} and {high}; got {instance!r}")
        elif low is not None:
            report.error(path, f"must be {low} or more; got {instance!r}")
        else:
            report.error(path, f"must be {high} or less; got {instance!r}")
    elif keyword == "minItems":
        report.error(path, f"must have at least {error.validator_value} item(s)")
    elif keyword == "minLength":
        report.error(path, "must not be empty")
    elif keyword == "pattern":
        expected = schema.get("x-expected", f"text matching {error.validator_value}")
        report.error(path, f"expected {expected}; got {instance!r}")
    else:
        report.error(path, error.message)


# -- per-object semantics -------------------------------------------------------------------
def _as_map(value: Any) -> Mapping[str, Any]:
    if type(value) is dict:  # the loader makes dicts: skip the slower ABC check
        return value
    if value is None:  # a field not written
        return {}
    return value if isinstance(value, Mapping) else {}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _check_metadata(
    report: _Reporter,
    path: FieldPath,
    meta: Mapping[str, Any],
    name_rule: Callable[[str], str | None] | None,
) -> None:
    if name_rule is not None:
        report.check_name(path + ("name",), meta.get("name"), name_rule)
    report.check_name(path + ("namespace",), meta.get("namespace"), names.dns1123_label)
    for field_name, value_rule in (("labels", names.label_value), ("annotations", None)):
        for key, value in _as_map(meta.get(field_name)).items():
            problem = names.qualified_name(key)
            if problem:
                report.error(path + (field_name, key), f"key {key!r}: {problem}")
            if value_rule is not None and isinstance(value, str):
                problem = value_rule(value)
                if problem:
                    report.error(path + (field_name, key), f"value {value!r} {problem}")


def _quantity(report: _Reporter, path: FieldPath, value: Any) -> Any:
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        return None
    try:
        parsed = parse_quantity(value)
    except QuantityError as exc:
        if isinstance(value, str) and not is_quantity_syntax(value):
            return None  # the schema pattern already reported it
        report.error(path, str(exc))  # inf, nan, an exponent too large
        return None
    if parsed < 0:
        report.error(path, f"must not be negative; got {value!r}")
        return None
    return parsed


def _check_container(
    report: _Reporter, path: FieldPath, container: Mapping[str, Any], volume_names: set[str]
) -> None:
    report.check_name(path + ("name",), container.get("name"), names.dns1123_label)
    image = container.get("image")
    if isinstance(image, str) and (not image.strip() or image != image.strip()):
        report.error(path + ("image",), "must be a non-empty image reference without spaces")
    seen_env: dict[str, int] = {}
    for index, env in enumerate(_as_list(container.get("env"))):
        env_name = _as_map(env).get("name")
        if isinstance(env_name, str):
            problem = names.env_name(env_name)  # check_name, without making the path first
            if problem:
                report.error(path + ("env", index, "name"), f"{env_name!r} {problem}")
            if env_name in seen_env:
                report.warn(
                    path + ("env", index, "name"),
                    f"env var {env_name!r} is set twice (env[{seen_env[env_name]}] and "
                    f"env[{index}]); the last one wins",
                )
            seen_env[env_name] = index
    resources = _as_map(container.get("resources"))
    limits, requests = _as_map(resources.get("limits")), _as_map(resources.get("requests"))
    for resource in ("cpu", "memory"):
        limit = request = None  # a path is made only for a value that is written
        if limits.get(resource) is not None:
            limit = _quantity(report, path + ("resources", "limits", resource), limits[resource])
        if requests.get(resource) is not None:
            request = _quantity(
                report, path + ("resources", "requests", resource), requests[resource]
            )
        if limit is not None and request is not None and request > limit:
            report.error(
                path + ("resources", "requests", resource),
                f"request {requests[resource]!r} is more than the limit {limits[resource]!r}",
            )
    if (
        isinstance(container.get("workingDir"), str)
        and container["workingDir"]
        and not (container["workingDir"].startswith("/"))
    ):
        report.error(path + ("workingDir",), "must be an absolute path")
    mount_paths: dict[str, int] = {}
    for index, mount in enumerate(_as_list(container.get("volumeMounts"))):
        mount = _as_map(mount)
        mount_path = path + ("volumeMounts", index)
        volume = mount.get("name")
        if isinstance(volume, str) and volume not in volume_names:
            report.error(
                mount_path + ("name",),
                f"no volume named {volume!r} in spec.volumes"
                + (f" (volumes: {', '.join(sorted(volume_names))})" if volume_names else ""),
            )
        target = mount.get("mountPath")
        if isinstance(target, str):
            if not target.startswith("/"):
                report.error(mount_path + ("mountPath",), "must be an absolute path")
            elif target in mount_paths:
                report.error(
                    mount_path + ("mountPath",),
                    f"{target!r} is already mounted by volumeMounts[{mount_paths[target]}]",
                )
            mount_paths[target] = index


def _check_pod_spec(report: _Reporter, path: FieldPath, spec: Mapping[str, Any]) -> None:
    report.check_name(path + ("hostname",), spec.get("hostname"), names.dns1123_label)
    volume_names: set[str] = set()
    for index, volume in enumerate(_as_list(spec.get("volumes"))):
        volume = _as_map(volume)
        vpath = path + ("volumes", index)
        vname = volume.get("name")
        report.check_name(vpath + ("name",), vname, names.dns1123_label)
        if isinstance(vname, str):
            if vname in volume_names:
                report.error(vpath + ("name",), f"duplicate volume name {vname!r}")
            volume_names.add(vname)
        sources = [key for key in volume if key != "name"]
        if not sources:
            report.error(vpath, "volume needs a source: emptyDir or hostPath")
        elif len(sources) > 1:
            report.error(vpath, f"volume has more than one source: {', '.join(sources)}")
        host_path = _as_map(volume.get("hostPath")).get("path")
        if isinstance(host_path, str) and not host_path.startswith("/"):
            report.error(vpath + ("hostPath", "path"), "must be an absolute path")
        elif isinstance(host_path, str) and ".." in host_path.split("/"):
            report.error(vpath + ("hostPath", "path"), "must not contain '..'")
        _quantity(
            report,
            vpath + ("emptyDir", "sizeLimit"),
            _as_map(volume.get("emptyDir")).get("sizeLimit"),
        )

    container_names: dict[str, int] = {}
    port_names: dict[str, FieldPath] = {}
    container_ports: dict[tuple[int, str], FieldPath] = {}
    host_ports: dict[tuple[str, int, str], FieldPath] = {}
    for index, container in enumerate(_as_list(spec.get("containers"))):
        container = _as_map(container)
        cpath = path + ("containers", index)
        cname = container.get("name")
        if isinstance(cname, str):
            if cname in container_names:
                report.error(
                    cpath + ("name",),
                    f"duplicate container name {cname!r} "
                    f"(also containers[{container_names[cname]}])",
                )
            container_names.setdefault(cname, index)
        _check_container(report, cpath, container, volume_names)
        for pindex, port in enumerate(_as_list(container.get("ports"))):
            port = _as_map(port)
            ppath = cpath + ("ports", pindex)
            protocol = port.get("protocol", "TCP")
            pname = port.get("name")
            if isinstance(pname, str):
                report.check_name(ppath + ("name",), pname, names.port_name)
                if pname in port_names:
                    report.error(
                        ppath + ("name",),
                        f"duplicate port name {pname!r} in this pod "
                        f"(also {format_path(port_names[pname])})",
                    )
                port_names.setdefault(pname, ppath)
            number = port.get("containerPort")
            if isinstance(number, int) and isinstance(protocol, str):
                key = (number, protocol)
                if key in container_ports:
                    report.error(
                        ppath + ("containerPort",),
                        f"containerPort {number}/{protocol} is declared twice in this pod "
                        f"(also {format_path(container_ports[key])}); the containers of a pod "
                        "share one network namespace",
                    )
                container_ports.setdefault(key, ppath)
            host_port = port.get("hostPort")
            host_ip = port.get("hostIP", "")
            if isinstance(host_ip, str) and host_ip:
                _check_ip(report, ppath + ("hostIP",), host_ip)
            if isinstance(host_port, int) and isinstance(protocol, str):
                hkey = (str(host_ip), host_port, protocol)
                if hkey in host_ports:
                    report.error(
                        ppath + ("hostPort",),
                        f"hostPort {host_port}/{protocol} is used twice in this pod "
                        f"(also {format_path(host_ports[hkey])})",
                    )
                host_ports.setdefault(hkey, ppath)


def _check_ip(report: _Reporter, path: FieldPath, value: Any) -> None:
    if not isinstance(value, str):
        return
    try:
        ipaddress.ip_address(value)
    except ValueError:
        report.error(path, f"{value!r} is not a valid IP address")


def _check_pod(report: _Reporter, body: Mapping[str, Any]) -> None:
    _check_metadata(report, ("metadata",), _as_map(body.get("metadata")), names.dns1123_subdomain)
    _check_pod_spec(report, ("spec",), _as_map(body.get("spec")))


def _check_rc(report: _Reporter, body: Mapping[str, Any]) -> None:
    _check_metadata(report, ("metadata",), _as_map(body.get("metadata")), names.dns1123_subdomain)
    spec = _as_map(body.get("spec"))
    template = _as_map(spec.get("template"))
    template_meta = _as_map(template.get("metadata"))
    _check_metadata(report, ("spec", "template", "metadata"), template_meta, None)
    template_spec = _as_map(template.get("spec"))
    _check_pod_spec(report, ("spec", "template", "spec"), template_spec)
    policy = template_spec.get("restartPolicy", "Always")
    if isinstance(policy, str) and policy != "Always":
        report.error(
            ("spec", "template", "spec", "restartPolicy"),
            f"a ReplicationController's pods must have restartPolicy Always; got {policy!r}",
        )
    labels = _as_map(template_meta.get("labels"))
    selector = spec.get("selector")
    if selector is None:
        if not labels:
            report.error(
                ("spec", "template", "metadata", "labels"),
                "a ReplicationController needs spec.selector or template labels to select its pods",
            )
        return
    selector = _as_map(selector)
    if not selector:
        report.error(("spec", "selector"), "selector must not be empty: it would select every pod")
        return
    for key, value in selector.items():
        if labels.get(key) != value:
            found = (
                f"the template has {key}={labels[key]}"
                if key in labels
                else f"the template has no label {key!r}"
            )
            report.error(
                ("spec", "selector", key),
                f"selector {key}={value} does not match the template's labels ({found}); the "
                "controller would never see its own pods",
            )


def _check_service(report: _Reporter, body: Mapping[str, Any]) -> None:
    _check_metadata(report, ("metadata",), _as_map(body.get("metadata")), names.dns1035_label)
    spec = _as_map(body.get("spec"))
    service_type = spec.get("type", "ClusterIP")
    cluster_ip = spec.get("clusterIP")
    headless = cluster_ip == "None"
    if isinstance(cluster_ip, str) and cluster_ip not in ("", "None"):
        _check_ip(report, ("spec", "clusterIP"), cluster_ip)
    ports = _as_list(spec.get("ports"))
    if not ports and not headless:
        report.error(("spec", "ports"), "a Service needs at least one port")
    seen_names: dict[str, int] = {}
    seen_ports: dict[tuple[int, str], int] = {}
    for index, port in enumerate(ports):
        port = _as_map(port)
        ppath: FieldPath = ("spec", "ports", index)
        pname = port.get("name")
        if isinstance(pname, str):
            report.check_name(ppath + ("name",), pname, names.dns1123_label)
            if pname in seen_names:
                report.error(
                    ppath + ("name",),
                    f"duplicate port name {pname!r} (also ports[{seen_names[pname]}])",
                )
            seen_names.setdefault(pname, index)
        elif len(ports) > 1:
            report.error(ppath + ("name",), "each port needs a name when a Service has several")
        number, protocol = port.get("port"), port.get("protocol", "TCP")
        if isinstance(number, int) and isinstance(protocol, str):
            if (number, protocol) in seen_ports:
                report.error(
                    ppath + ("port",),
                    f"port {number}/{protocol} is declared twice "
                    f"(also ports[{seen_ports[(number, protocol)]}])",
                )
            seen_ports.setdefault((number, protocol), index)
        target = port.get("targetPort")
        if isinstance(target, str):
            report.check_name(ppath + ("targetPort",), target, names.port_name)
        node_port = port.get("nodePort")
        if isinstance(node_port, int):
            if service_type not in ("NodePort", "LoadBalancer"):
                report.error(
                    ppath + ("nodePort",),
                    f"nodePort needs type NodePort or LoadBalancer (type is {service_type})",
                )
            low, high = NODE_PORT_RANGE
            if not low <= node_port <= high:
                report.error(
                    ppath + ("nodePort",),
                    f"must be in the node port range {low}-{high}; got {node_port}",
                )
    for field_name in ("externalIPs", "publicIPs"):
        for index, address in enumerate(_as_list(spec.get(field_name))):
            _check_ip(report, ("spec", field_name, index), address)
    if "publicIPs" in spec:
        report.warn(
            ("spec", "publicIPs"),
            "publicIPs is the legacy (v1beta) name: it is honoured like spec.externalIPs, but "
            "real Kubernetes v1 rejects it; prefer externalIPs",
        )
    if not _as_map(spec.get("selector")):
        report.warn(
            ("spec", "selector"),
            "the Service has no selector: it selects no pods, so its ports forward nowhere",
        )


_CHECKS: dict[str, Callable[[_Reporter, Mapping[str, Any]], None]] = {
    "Pod": _check_pod,
    "ReplicationController": _check_rc,
    "Service": _check_service,
}


def _check_shape(report: _Reporter, manifest: Manifest) -> bool:
    """apiVersion and kind; False when the object cannot be checked any further."""
    body = manifest.body
    api_version, kind = body.get("apiVersion"), body.get("kind")
    ok = True
    if "kind" not in body:
        report.error(
            ("kind",), f"missing required field 'kind' (one of {', '.join(SUPPORTED_KINDS)})"
        )
        ok = False
    elif kind not in SUPPORTED_KINDS:
        report.error(
            ("kind",),
            f"unsupported kind {kind!r}: the reconciler reads {', '.join(SUPPORTED_KINDS)} "
            "(and List of them)",
        )
        ok = False
    if "apiVersion" not in body:
        report.error(("apiVersion",), "missing required field 'apiVersion' (use v1)")
        ok = False
    elif isinstance(api_version, str) and api_version in _OLD_API_HINTS:
        report.error(("apiVersion",), _OLD_API_HINTS[api_version].format(v=api_version))
        ok = False
    elif api_version != "v1":
        report.error(
            ("apiVersion",),
            f"unsupported apiVersion {api_version!r} for {kind}: use v1",
        )
        ok = False
    return ok


def check_manifest(manifest: Manifest, out: list[Diagnostic]) -> None:
    """All single-object checks of one manifest, appended to ``out``."""
    report = _Reporter(manifest, out)
    if not _check_shape(report, manifest):
        return
    for error in _schema_checks()[manifest.kind](manifest.body):
        _schema_diagnostics(report, error)
    _CHECKS[manifest.kind](report, manifest.body)


# -- across objects ---------------------------------------------------------------------------
class TreeFacts(NamedTuple):
    """What the checks across objects need of one object, and nothing more.

    Small plain values: worker processes (``reconciler.parallel``) send these instead of
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
    #: a pod template's labels (Pod, ReplicationController), or a Service's selector
    labels: Mapping[str, Any]
    #: a pod template's container port names, or each Service port's
    #: (nodePort, protocol, targetPort)
    ports: tuple[Any, ...]

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
    spec = _as_map(body.get("spec"))
    if kind == "Service":
        ports = [_as_map(port) for port in _as_list(spec.get("ports"))]
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
            _as_map(spec.get("selector")),
            tuple(
                (port.get("nodePort"), port.get("protocol", "TCP"), port.get("targetPort"))
                for port in ports
            ),
        )
    if kind == "Pod":
        labels, pod_spec = manifest.labels, spec
    else:  # a ReplicationController's pod template
        template = _as_map(spec.get("template"))
        labels = _as_map(_as_map(template.get("metadata")).get("labels"))
        pod_spec = _as_map(template.get("spec"))
    return TreeFacts(
        kind,
        manifest.namespace,
        name,
        manifest.file,
        manifest.position,
        {path: positions[path] for path in _NAME_PATHS if path in positions},
        labels,
        tuple(
            port_name
            for container in _as_list(pod_spec.get("containers"))
            for port in _as_list(_as_map(container).get("ports"))
            if isinstance(port_name := _as_map(port).get("name"), str)
        ),
    )


def check_tree(manifests: Iterable[Manifest], out: list[Diagnostic]) -> None:
    """Checks that need every object at once."""
    check_facts([tree_facts(manifest) for manifest in manifests], out)


def check_facts(facts: Iterable[TreeFacts | None], out: list[Diagnostic]) -> None:
    """``check_tree`` on the objects' ``tree_facts`` (None for the objects it skips)."""
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
            if isinstance(node_port, int) and isinstance(protocol, str):
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
        matches: set[int] | frozenset[int] | None = None
        for key, value in selector.items():
            if not isinstance(value, str):
                matches = set()
                break
            found = by_label.get((service.namespace, key, value), _NO_TEMPLATES)
            matches = found if matches is None else matches & found
        selected = [templates[i] for i in sorted(matches or ())]
        if not selected:
            wanted = ",".join(f"{k}={v}" for k, v in selector.items())
            service.report(
                out,
                Severity.WARNING,
                ("spec", "selector"),
                f"selector {wanted} matches no Pod or ReplicationController template in "
                f"namespace {service.namespace}",
            )
            continue
        defined = {port_name for template in selected for port_name in template.ports}
        for index, (_, _, target) in enumerate(service.ports):
            if isinstance(target, str) and target not in defined:
                service.report(
                    out,
                    Severity.WARNING,
                    ("spec", "ports", index, "targetPort"),
                    f"no selected pod defines a container port named {target!r}",
                )


def finish(diagnostics: list[Diagnostic], facts: Iterable[TreeFacts | None]) -> list[Diagnostic]:
    """The last steps of ``validate``: the checks across objects, then drop repeats and sort.

    ``diagnostics`` holds the loading diagnostics, then every object's own, in file order;
    ``facts`` are the objects' ``tree_facts``. Returns them sorted by file and position.
    """
    check_facts(facts, diagnostics)
    unique = list(dict.fromkeys(diagnostics))  # jsonschema reports some problems twice
    unique.sort(key=Diagnostic.sort_key)
    return unique


def validate(loaded: LoadResult) -> ValidationResult:
    """Validate everything loaded; diagnostics come back sorted by file and position."""
    diagnostics = list(loaded.diagnostics)
    for manifest in loaded.manifests:
        check_manifest(manifest, diagnostics)
    facts = [tree_facts(manifest) for manifest in loaded.manifests]
    return ValidationResult(list(loaded.manifests), finish(diagnostics, facts))
