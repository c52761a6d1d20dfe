"""Semantic checks of one object, by kind: its apiVersion and kind (``check_shape``), then
its metadata and what the API server checks of a Pod, a ReplicationController, a Service or
a Deployment (``CHECKS``; the Deployment's spec is checked in ``deployments``). The pod spec
checks they share are in ``pods``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from reconciler.check.config import check_claim, check_configmap, check_secret
from reconciler.check.deployments import check_deployment_spec
from reconciler.check.pods import check_ip, check_pod_spec
from reconciler.check.report import Reporter
from reconciler.core import names
from reconciler.core.model import (
    API_VERSIONS,
    SUPPORTED_KINDS,
    FieldPath,
    Manifest,
    as_list,
    as_map,
)
from reconciler.core.text import QUOTE_LIMIT, bounded, shown

NODE_PORT_RANGE = (30000, 32767)
#: Counts are Kubernetes int32s: ``replicas: 3000000000`` is refused, as the API server does.
INT32_MAX = 2**31 - 1

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


def _check_metadata(
    report: Reporter,
    path: FieldPath,
    meta: Mapping[str, Any],
    name_rule: Callable[[str], str | None] | None,
) -> None:
    if name_rule is not None:
        report.check_name(path + ("name",), meta.get("name"), name_rule)
    report.check_name(path + ("namespace",), meta.get("namespace"), names.dns1123_label)
    for field_name, value_rule in (("labels", names.label_value), ("annotations", None)):
        for key, value in as_map(meta.get(field_name)).items():
            problem = names.qualified_name(key)
            if problem:
                report.error(path + (field_name, key), f"key {shown(key)}: {problem}")
            if value_rule is not None and isinstance(value, str):
                problem = value_rule(value)
                if problem:
                    report.error(path + (field_name, key), f"value {shown(value)} {problem}")


def _check_pod(report: Reporter, body: Mapping[str, Any]) -> None:
    _check_metadata(report, ("metadata",), as_map(body.get("metadata")), names.dns1123_subdomain)
    check_pod_spec(report, ("spec",), as_map(body.get("spec")))


def _check_rc(report: Reporter, body: Mapping[str, Any]) -> None:
    _check_metadata(report, ("metadata",), as_map(body.get("metadata")), names.dns1123_subdomain)
    spec = as_map(body.get("spec"))
    template = as_map(spec.get("template"))
    template_meta = as_map(template.get("metadata"))
    _check_metadata(report, ("spec", "template", "metadata"), template_meta, None)
    template_spec = as_map(template.get("spec"))
    check_pod_spec(report, ("spec", "template", "spec"), template_spec)
    replicas = spec.get("replicas")
    if isinstance(replicas, int) and not isinstance(replicas, bool) and replicas > INT32_MAX:
        report.error(
            ("spec", "replicas"),
            f"must be {INT32_MAX} or less (a Kubernetes int32); got {shown(replicas)}",
        )
    policy = template_spec.get("restartPolicy", "Always")
    if isinstance(policy, str) and policy != "Always":
        report.error(
            ("spec", "template", "spec", "restartPolicy"),
            f"a ReplicationController's pods must have restartPolicy Always; got {shown(policy)}",
        )
    labels = as_map(template_meta.get("labels"))
    selector = spec.get("selector")
    if selector is None:
        if not labels:
            report.error(
                ("spec", "template", "metadata", "labels"),
                "a ReplicationController needs spec.selector or template labels to select its pods",
            )
        return
    selector = as_map(selector)
    if not selector:
        report.error(("spec", "selector"), "selector must not be empty: it would select every pod")
        return
    for key, value in selector.items():
        if labels.get(key) != value:
            found = (
                f"the template has {bounded(key, QUOTE_LIMIT)}="
                f"{bounded(str(labels[key]), QUOTE_LIMIT)}"
                if key in labels
                else f"the template has no label {shown(key)}"
            )
            report.error(
                ("spec", "selector", key),
                f"selector {bounded(key, QUOTE_LIMIT)}={bounded(str(value), QUOTE_LIMIT)} does not "
                f"match the template's labels ({found}); the "
                "controller would never see its own pods",
            )


def _check_service(report: Reporter, body: Mapping[str, Any]) -> None:
    _check_metadata(report, ("metadata",), as_map(body.get("metadata")), names.dns1035_label)
    spec = as_map(body.get("spec"))
    service_type = spec.get("type", "ClusterIP")
    cluster_ip = spec.get("clusterIP")
    headless = cluster_ip == "None"
    if isinstance(cluster_ip, str) and cluster_ip not in ("", "None"):
        check_ip(report, ("spec", "clusterIP"), cluster_ip)
    ports = as_list(spec.get("ports"))
    if not ports and not headless:
        report.error(("spec", "ports"), "a Service needs at least one port")
    seen_names: dict[str, int] = {}
    seen_ports: dict[tuple[int, str], int] = {}
    for index, port in enumerate(ports):
        port = as_map(port)
        ppath: FieldPath = ("spec", "ports", index)
        pname = port.get("name")
        if isinstance(pname, str):
            report.check_name(ppath + ("name",), pname, names.dns1123_label)
            if pname in seen_names:
                report.error(
                    ppath + ("name",),
                    f"duplicate port name {shown(pname)} (also ports[{seen_names[pname]}])",
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
        if isinstance(node_port, int) and node_port != 0:  # 0 means unset, as in Kubernetes
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
        for index, address in enumerate(as_list(spec.get(field_name))):
            check_ip(report, ("spec", field_name, index), address)
    if "publicIPs" in spec:
        report.warn(
            ("spec", "publicIPs"),
            "publicIPs is the legacy (v1beta) name: it is honoured like spec.externalIPs, but "
            "real Kubernetes v1 rejects it; prefer externalIPs",
        )
    if not as_map(spec.get("selector")):
        report.warn(
            ("spec", "selector"),
            "the Service has no selector: it selects no pods, so its ports forward nowhere",
        )


def _check_deployment(report: Reporter, body: Mapping[str, Any]) -> None:
    _check_metadata(report, ("metadata",), as_map(body.get("metadata")), names.dns1123_subdomain)
    template_meta = as_map(as_map(as_map(body.get("spec")).get("template")).get("metadata"))
    _check_metadata(report, ("spec", "template", "metadata"), template_meta, None)
    check_deployment_spec(report, body)
    replicas = as_map(body.get("spec")).get("replicas")
    if isinstance(replicas, int) and not isinstance(replicas, bool) and replicas > INT32_MAX:
        report.error(
            ("spec", "replicas"),
            f"must be {INT32_MAX} or less (a Kubernetes int32); got {shown(replicas)}",
        )


def _with_metadata(
    check: Callable[[Reporter, Mapping[str, Any]], None],
) -> Callable[[Reporter, Mapping[str, Any]], None]:
    """A kind's own checks after its metadata's (a DNS-1123 subdomain name)."""

    def checked(report: Reporter, body: Mapping[str, Any]) -> None:
        meta = as_map(body.get("metadata"))
        _check_metadata(report, ("metadata",), meta, names.dns1123_subdomain)
        check(report, body)

    return checked


CHECKS: dict[str, Callable[[Reporter, Mapping[str, Any]], None]] = {
    "Pod": _check_pod,
    "ReplicationController": _check_rc,
    "Service": _check_service,
    "Secret": _with_metadata(check_secret),
    "ConfigMap": _with_metadata(check_configmap),
    "PersistentVolumeClaim": _with_metadata(check_claim),
    "Deployment": _check_deployment,
}

#: Deployments written in the API groups that served them before apps/v1 (removed in
#: Kubernetes 1.16): not converted, as with the v1beta shapes of the core kinds.
_OLD_DEPLOYMENT_APIS = ("extensions/v1beta1", "apps/v1beta1", "apps/v1beta2")


def check_shape(report: Reporter, manifest: Manifest) -> bool:
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
            f"unsupported kind {shown(kind)}: the reconciler reads {', '.join(SUPPORTED_KINDS)} "
            "(and List of them)",
        )
        ok = False
    expected = API_VERSIONS.get(kind, "v1") if isinstance(kind, str) else "v1"
    if "apiVersion" not in body:
        report.error(("apiVersion",), f"missing required field 'apiVersion' (use {expected})")
        ok = False
    elif kind == "Deployment" and api_version in _OLD_DEPLOYMENT_APIS:
        report.error(
            ("apiVersion",),
            f"apiVersion {api_version} for Deployment was removed in Kubernetes 1.16; use "
            "apps/v1 (which requires spec.selector, e.g. spec.selector.matchLabels set to "
            "the template's labels)",
        )
        ok = False
    elif isinstance(api_version, str) and api_version in _OLD_API_HINTS:
        report.error(("apiVersion",), _OLD_API_HINTS[api_version].format(v=api_version))
        ok = False
    elif api_version != expected and kind in SUPPORTED_KINDS:  # else the kind is the error
        report.error(
            ("apiVersion",),
            f"unsupported apiVersion {shown(api_version)} for "
            f"{bounded(str(kind), QUOTE_LIMIT)}: use {expected}",
        )
        ok = False
    return ok
