"""Semantic checks of liveness, readiness and startup probes, and of init containers' own
rules: what Kubernetes' API server checks beyond the schema (``validateProbe``,
``validateHandler``, ``validateHTTPGetAction``, ``validateInitContainers``), plus one check
kubelet would only fail at run time: a port named by a probe must be one of its
container's ports.

Kubernetes fills in defaults before it validates, so a 0 in ``periodSeconds``,
``timeoutSeconds``, ``successThreshold`` or ``failureThreshold`` means the default (10, 1,
1, 3) and only negative numbers are errors (the schema says so).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from reconciler.check.report import Reporter
from reconciler.core import names
from reconciler.core.model import FieldPath, as_list, as_map

PROBE_FIELDS = ("livenessProbe", "readinessProbe", "startupProbe")
HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")
#: RFC 7230 token characters: what an HTTP header name may hold
_HEADER_NAME = re.compile(r"[-!#$%&'*+.^_`|~0-9A-Za-z]+")


def _check_port(report: Reporter, path: FieldPath, port: Any, container: Mapping[str, Any]) -> None:
    if not isinstance(port, str):
        return  # a number: its range is the schema's
    problem = names.port_name(port)
    if problem:
        report.error(path, f"{port!r} {problem}")
        return
    declared = [
        p.get("name") for p in map(as_map, as_list(container.get("ports"))) if p.get("name")
    ]
    if port not in declared:
        found = f" (it names {', '.join(map(str, declared))})" if declared else ""
        report.error(
            path,
            f"no port named {port!r} in this container's ports{found}: the probe would "
            "never reach the container",
        )


def _check_probe(
    report: Reporter,
    path: FieldPath,
    field: str,
    probe: Mapping[str, Any],
    container: Mapping[str, Any],
) -> None:
    handlers = [key for key in probe if key in HANDLERS]  # as written
    if not handlers:
        report.error(path, "must specify a handler type: exec, httpGet or tcpSocket")
    for extra in handlers[1:]:
        report.error(
            path + (extra,),
            f"may not specify more than 1 handler type (already {handlers[0]})",
        )
    exec_action = probe.get("exec")
    if isinstance(exec_action, dict) and not as_list(exec_action.get("command")):
        report.error(path + ("exec", "command"), "required: the command to run in the container")
    http = probe.get("httpGet")
    if isinstance(http, dict):
        _check_port(report, path + ("httpGet", "port"), http.get("port"), container)
        for index, header in enumerate(as_list(http.get("httpHeaders"))):
            header_name = as_map(header).get("name")
            if isinstance(header_name, str) and not _HEADER_NAME.fullmatch(header_name):
                report.error(
                    path + ("httpGet", "httpHeaders", index, "name"),
                    f"{header_name!r} is not a valid HTTP header name (letters, digits and "
                    "!#$%&'*+-.^_`|~)",
                )
    tcp = probe.get("tcpSocket")
    if isinstance(tcp, dict):
        _check_port(report, path + ("tcpSocket", "port"), tcp.get("port"), container)
    threshold = probe.get("successThreshold")
    if field != "readinessProbe" and isinstance(threshold, int) and threshold not in (0, 1):
        report.error(
            path + ("successThreshold",),
            f"must be 1 for a {field} (a single success is enough); got {threshold}",
        )


def check_probes(
    report: Reporter, path: FieldPath, container: Mapping[str, Any], *, init: bool = False
) -> None:
    """The probes of one container (``path`` is the container's). An init container runs
    to completion, so Kubernetes refuses probes on it."""
    for field in PROBE_FIELDS:
        probe = container.get(field)
        if not isinstance(probe, dict):
            continue
        if init:
            report.error(
                path + (field,),
                "must not be set for init containers: they run to completion, one after "
                "the other, before the app containers start",
            )
            continue
        _check_probe(report, path + (field,), field, probe, container)
