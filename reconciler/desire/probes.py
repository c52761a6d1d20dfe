"""Probes as the desired state holds them: Kubernetes' defaults filled in (what the spec
hash covers), then as ``Probe`` values with named ports resolved. Pure.

Kubernetes defaults a 0 or missing ``periodSeconds`` to 10, ``timeoutSeconds`` to 1,
``successThreshold`` to 1 and ``failureThreshold`` to 3, an httpGet's ``path`` to ``/`` and
its ``scheme`` to HTTP. A probe whose only handler the reconciler does not run (grpc, a
warning of ``validate``) is left out, as if it were not written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.core.model import Probe, as_list, as_map

#: the probe fields of a container, and the kind of each
PROBE_KINDS = {
    "livenessProbe": "liveness",
    "readinessProbe": "readiness",
    "startupProbe": "startup",
}
_DEFAULTS = {
    "periodSeconds": 10,
    "timeoutSeconds": 1,
    "successThreshold": 1,
    "failureThreshold": 3,
}


def _seconds(probe: Mapping[str, Any], key: str) -> int:
    value = probe.get(key)
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return _DEFAULTS.get(key, 0)


def normalise_probe(raw: Any) -> dict[str, Any] | None:
    """One probe with its defaults, or None when it has no handler the reconciler runs."""
    probe = as_map(raw)
    handler: dict[str, Any]
    if "exec" in probe:
        command = as_list(as_map(probe["exec"]).get("command"))
        handler = {"exec": {"command": [str(c) for c in command]}}
    elif "httpGet" in probe:
        http = as_map(probe["httpGet"])
        path = str(http.get("path") or "/")
        handler = {
            "httpGet": {
                "path": path if path.startswith("/") else "/" + path,
                "port": http.get("port"),
                "host": str(http.get("host", "")),
                "scheme": str(http.get("scheme") or "HTTP"),
                "httpHeaders": [
                    {"name": str(h.get("name", "")), "value": str(h.get("value", ""))}
                    for h in map(as_map, as_list(http.get("httpHeaders")))
                ],
            }
        }
    elif "tcpSocket" in probe:
        tcp = as_map(probe["tcpSocket"])
        handler = {"tcpSocket": {"port": tcp.get("port"), "host": str(tcp.get("host", ""))}}
    else:
        return None
    return {
        **handler,
        "initialDelaySeconds": _seconds(probe, "initialDelaySeconds"),
        **{key: _seconds(probe, key) for key in _DEFAULTS},
    }


def normalised_probes(container: Mapping[str, Any]) -> dict[str, Any]:
    """The probe fields of a container that has any: absent fields stay absent, so that a
    pod without probes keeps the spec (and spec hash) it always had."""
    result = {}
    for field in PROBE_KINDS:
        if field in container:
            probe = normalise_probe(container[field])
            if probe is not None:
                result[field] = probe
    return result


def _port_number(port: Any, ports: list[Any]) -> int:
    if isinstance(port, int):
        return port
    for declared in map(as_map, ports):
        if declared.get("name") == port:
            return int(declared.get("containerPort") or 0)
    return int(port) if isinstance(port, str) and port.isdigit() else 0


def probes_of(container: Mapping[str, Any]) -> tuple[Probe, ...]:
    """The ``Probe`` values of a normalised container (``normalise_pod_spec``'s shape)."""
    result = []
    for field, kind in PROBE_KINDS.items():
        probe = container.get(field)
        if not probe:
            continue
        timing = {
            "initial_delay": probe["initialDelaySeconds"],
            "period": probe["periodSeconds"],
            "timeout": probe["timeoutSeconds"],
            "success_threshold": probe["successThreshold"],
            "failure_threshold": probe["failureThreshold"],
        }
        ports = as_list(container.get("ports"))
        if "exec" in probe:
            result.append(Probe(kind, "exec", command=tuple(probe["exec"]["command"]), **timing))
        elif "httpGet" in probe:
            http = probe["httpGet"]
            result.append(
                Probe(
                    kind,
                    "http",
                    port=_port_number(http["port"], ports),
                    host=http["host"],
                    path=http["path"],
                    scheme=http["scheme"],
                    headers=tuple((h["name"], h["value"]) for h in http["httpHeaders"]),
                    **timing,
                )
            )
        else:
            tcp = probe["tcpSocket"]
            result.append(
                Probe(
                    kind, "tcp", port=_port_number(tcp["port"], ports), host=tcp["host"], **timing
                )
            )
    return tuple(result)
