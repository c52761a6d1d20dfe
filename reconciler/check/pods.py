"""Semantic checks of a pod spec and its containers: what the API server checks beyond the
schema (names, duplicates, volumes and their mounts, quantities, ports, addresses).

A Pod's spec and a ReplicationController's pod template share these checks. ``as_map``
and ``as_list`` read the loosely typed values every check walks: a field of the wrong type
was reported by the schema, and reads here as empty.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from reconciler.check.consumers import check_uses
from reconciler.check.probes import check_probes
from reconciler.check.report import Reporter
from reconciler.check.security import check_security
from reconciler.core import names
from reconciler.core.errors import QuantityError
from reconciler.core.model import FieldPath, as_list, as_map, format_path
from reconciler.core.quantity import is_quantity_syntax, parse_quantity
from reconciler.core.text import bounded, shown


def _quantity(report: Reporter, path: FieldPath, value: Any) -> Any:
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
        report.error(path, f"must not be negative; got {shown(value)}")
        return None
    return parsed


def _check_container(
    report: Reporter, path: FieldPath, container: Mapping[str, Any], volume_names: set[str]
) -> None:
    report.check_name(path + ("name",), container.get("name"), names.dns1123_label)
    image = container.get("image")
    if isinstance(image, str) and (not image.strip() or image != image.strip()):
        report.error(path + ("image",), "must be a non-empty image reference without spaces")
    seen_env: dict[str, int] = {}
    for index, env in enumerate(as_list(container.get("env"))):
        env_name = as_map(env).get("name")
        if isinstance(env_name, str):
            problem = names.env_name(env_name)  # check_name, without making the path first
            if problem:
                report.error(path + ("env", index, "name"), f"{shown(env_name)} {problem}")
            if env_name in seen_env:
                report.warn(
                    path + ("env", index, "name"),
                    f"env var {shown(env_name)} is set twice (env[{seen_env[env_name]}] and "
                    f"env[{index}]); the last one wins",
                )
            seen_env[env_name] = index
    resources = as_map(container.get("resources"))
    limits, requests = as_map(resources.get("limits")), as_map(resources.get("requests"))
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
                f"request {shown(requests[resource])} is more than the limit "
                f"{shown(limits[resource])}",
            )
    if (
        isinstance(container.get("workingDir"), str)
        and container["workingDir"]
        and not (container["workingDir"].startswith("/"))
    ):
        report.error(path + ("workingDir",), "must be an absolute path")
    mount_paths: dict[str, int] = {}
    for index, mount in enumerate(as_list(container.get("volumeMounts"))):
        mount = as_map(mount)
        mount_path = path + ("volumeMounts", index)
        volume = mount.get("name")
        if isinstance(volume, str) and volume not in volume_names:
            report.error(
                mount_path + ("name",),
                f"no volume named {shown(volume)} in spec.volumes"
                + (
                    f" (volumes: {bounded(', '.join(sorted(volume_names)), 200)})"
                    if volume_names
                    else ""
                ),
            )
        target = mount.get("mountPath")
        if isinstance(target, str):
            if not target.startswith("/"):
                report.error(mount_path + ("mountPath",), "must be an absolute path")
            elif target in mount_paths:
                report.error(
                    mount_path + ("mountPath",),
                    f"{shown(target)} is already mounted by volumeMounts[{mount_paths[target]}]",
                )
            mount_paths[target] = index


def check_pod_spec(report: Reporter, path: FieldPath, spec: Mapping[str, Any]) -> None:
    report.check_name(path + ("hostname",), spec.get("hostname"), names.dns1123_label)
    check_security(report, path, spec)
    check_uses(report, path, spec)
    volume_names: set[str] = set()
    for index, volume in enumerate(as_list(spec.get("volumes"))):
        volume = as_map(volume)
        vpath = path + ("volumes", index)
        vname = volume.get("name")
        report.check_name(vpath + ("name",), vname, names.dns1123_label)
        if isinstance(vname, str):
            if vname in volume_names:
                report.error(vpath + ("name",), f"duplicate volume name {shown(vname)}")
            volume_names.add(vname)
        sources = [key for key in volume if key != "name"]
        if len(sources) > 1:  # none: an emptyDir, as Kubernetes defaults it
            listed = bounded(", ".join(sources), 200)
            report.error(vpath, f"volume has more than one source: {listed}")
        host_path = as_map(volume.get("hostPath")).get("path")
        if isinstance(host_path, str) and not host_path.startswith("/"):
            report.error(vpath + ("hostPath", "path"), "must be an absolute path")
        elif isinstance(host_path, str) and ".." in host_path.split("/"):
            report.error(vpath + ("hostPath", "path"), "must not contain '..'")
        _quantity(
            report,
            vpath + ("emptyDir", "sizeLimit"),
            as_map(volume.get("emptyDir")).get("sizeLimit"),
        )

    container_names: dict[str, int] = {}
    port_names: dict[str, FieldPath] = {}
    container_ports: dict[tuple[int, str], FieldPath] = {}
    host_ports: dict[tuple[str, int, str], FieldPath] = {}
    for index, container in enumerate(as_list(spec.get("containers"))):
        container = as_map(container)
        cpath = path + ("containers", index)
        cname = container.get("name")
        if isinstance(cname, str):
            if cname in container_names:
                report.error(
                    cpath + ("name",),
                    f"duplicate container name {shown(cname)} "
                    f"(also containers[{container_names[cname]}])",
                )
            container_names.setdefault(cname, index)
        _check_container(report, cpath, container, volume_names)
        check_probes(report, cpath, container)
        for pindex, port in enumerate(as_list(container.get("ports"))):
            port = as_map(port)
            ppath = cpath + ("ports", pindex)
            protocol = port.get("protocol", "TCP")
            pname = port.get("name")
            if isinstance(pname, str):
                report.check_name(ppath + ("name",), pname, names.port_name)
                if pname in port_names:
                    report.error(
                        ppath + ("name",),
                        f"duplicate port name {shown(pname)} in this pod "
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
                check_ip(report, ppath + ("hostIP",), host_ip)
            if isinstance(host_port, int) and isinstance(protocol, str):
                hkey = (str(host_ip), host_port, protocol)
                if hkey in host_ports:
                    report.error(
                        ppath + ("hostPort",),
                        f"hostPort {host_port}/{protocol} is used twice in this pod "
                        f"(also {format_path(host_ports[hkey])})",
                    )
                host_ports.setdefault(hkey, ppath)
    _check_init_containers(report, path, spec, container_names, volume_names)


def _check_init_containers(
    report: Reporter,
    path: FieldPath,
    spec: Mapping[str, Any],
    container_names: dict[str, int],
    volume_names: set[str],
) -> None:
    """Init containers share the app containers' checks, and their names: a name is unique
    across both lists (Kubernetes refuses a duplicate in either)."""
    seen: dict[str, int] = {}
    for index, container in enumerate(as_list(spec.get("initContainers"))):
        container = as_map(container)
        cpath = path + ("initContainers", index)
        cname = container.get("name")
        if isinstance(cname, str):
            if cname in seen:
                report.error(
                    cpath + ("name",),
                    f"duplicate container name {cname!r} (also initContainers[{seen[cname]}])",
                )
            elif cname in container_names:
                report.error(
                    cpath + ("name",),
                    f"duplicate container name {cname!r} (also containers"
                    f"[{container_names[cname]}]): init and app containers share one namespace "
                    "of names",
                )
            seen.setdefault(cname, index)
        _check_container(report, cpath, container, volume_names)
        check_probes(report, cpath, container, init=True)


def check_ip(report: Reporter, path: FieldPath, value: Any) -> None:
    if not isinstance(value, str):
        return
    try:
        ipaddress.ip_address(value)
    except ValueError:
        report.error(path, f"{shown(value)} is not a valid IP address")
