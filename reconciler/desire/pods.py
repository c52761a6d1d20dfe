"""One pod's desired shape: Kubernetes' defaults filled in, the spec hash, its infra and app
containers and its volumes. Pure.

The normalised spec is what the hash covers, so a change to a field the reconciler ignores
never recreates a pod, while a change to anything it acts on always does.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any

from reconciler.core import labels as L
from reconciler.core.model import (
    DesiredContainer,
    DesiredPod,
    Manifest,
    MountSpec,
    ObjectRef,
    PortBinding,
    VolumeSpec,
    as_list,
    as_map,
)
from reconciler.core.quantity import cpu_to_nano, memory_to_bytes, parse_quantity
from reconciler.core.redact import redact_spec
from reconciler.desire import security
from reconciler.desire.claims import claim_labels, claim_volume_name, driver_for
from reconciler.desire.config import FILE_SOURCES, PodConfig, PodFacts, resolve
from reconciler.desire.probes import normalised_probes, probes_of
from reconciler.desire.services import DesiredService, service_env
from reconciler.desire.settings import PodContext, Settings, docker_name
from reconciler.source.hosts import DEFAULT_VOLUME_DRIVER


class PodProblem(ValueError):
    """A pod that cannot be made as written on its host (a storage class the host does not
    map, a resource value without a limit or capacity): ``path`` says where."""

    def __init__(self, message: str, path: tuple[str | int, ...]) -> None:
        super().__init__(message)
        self.path = path


def _annotations(manifest: Manifest, spec_path: tuple[str | int, ...]) -> dict[str, str]:
    """The pod's annotations: a Pod's, or its template's (the metadata beside its spec)."""
    node: Any = manifest.body
    for part in spec_path[:-1]:
        node = as_map(node).get(str(part))
    meta = as_map(as_map(node).get("metadata"))
    return {str(k): str(v) for k, v in as_map(meta.get("annotations")).items()}


def default_pull_policy(image: str) -> str:
    """Kubernetes' default: Always for ``:latest`` or untagged images, else IfNotPresent."""
    last = image.rsplit("/", 1)[-1]
    if "@" in last:
        return "IfNotPresent"
    tag = last.partition(":")[2]
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def _normalise_container(c: Mapping[str, Any]) -> dict[str, Any]:
    """One container (or init container) with its defaults; probes only when it has any."""
    image = str(c.get("image", ""))
    resources = as_map(c.get("resources"))
    return {
        "name": c.get("name"),
        "image": image,
        "imagePullPolicy": c.get("imagePullPolicy") or default_pull_policy(image),
        "command": list(c["command"]) if "command" in c else None,
        "args": list(c["args"]) if "args" in c else None,
        "env": [
            {"name": e.get("name"), "value": str(e.get("value", ""))}
            for e in map(as_map, as_list(c.get("env")))
            if "valueFrom" not in e
        ],
        "ports": [
            {
                "containerPort": p.get("containerPort"),
                "protocol": p.get("protocol", "TCP"),
                "hostPort": p.get("hostPort"),
                "hostIP": p.get("hostIP", ""),
                "name": p.get("name", ""),
            }
            for p in map(as_map, as_list(c.get("ports")))
        ],
        "workingDir": c.get("workingDir", ""),
        "resources": {
            kind: {
                r: str(v) for r, v in as_map(resources.get(kind)).items() if r in ("cpu", "memory")
            }
            for kind in ("limits", "requests")
        },
        "volumeMounts": [
            {
                "name": m.get("name"),
                "mountPath": m.get("mountPath"),
                "readOnly": bool(m.get("readOnly", False)),
            }
            for m in map(as_map, as_list(c.get("volumeMounts")))
        ],
        **normalised_probes(c),
    }


def normalise_pod_spec(spec: Mapping[str, Any], hostname: str) -> dict[str, Any]:
    """The pod spec with Kubernetes' defaults filled in and unhonoured fields dropped.

    This is what the spec hash covers, so a change to an ignored field (an annotation, a
    securityContext) never recreates a pod, while a change to anything we act on always
    does. Probes and init containers appear only when written, so that a pod without them
    keeps the hash it had before the reconciler knew them.
    """
    containers = []
    for c in map(as_map, as_list(spec.get("containers"))):
        containers.append(_normalise_container(c))
        context = security.normalise_container(spec, c)
        if context is not None:  # written only when set: other pods keep their hash
            containers[-1]["securityContext"] = context
    volumes = []
    for v in map(as_map, as_list(spec.get("volumes"))):
        if "emptyDir" in v:
            empty = as_map(v["emptyDir"])
            volumes.append(
                {
                    "name": v.get("name"),
                    "emptyDir": {
                        "medium": empty.get("medium", ""),
                        "sizeLimit": str(empty["sizeLimit"]) if "sizeLimit" in empty else None,
                    },
                }
            )
        elif "hostPath" in v:
            volumes.append(
                {"name": v.get("name"), "hostPath": {"path": as_map(v["hostPath"]).get("path")}}
            )
        elif "persistentVolumeClaim" in v:
            claim = as_map(v["persistentVolumeClaim"])
            volumes.append(
                {
                    "name": v.get("name"),
                    "persistentVolumeClaim": {
                        "claimName": claim.get("claimName"),
                        "readOnly": bool(claim.get("readOnly", False)),
                    },
                }
            )
        elif not [key for key in v if key != "name"]:  # no source: Kubernetes' emptyDir
            volumes.append({"name": v.get("name"), "emptyDir": {"medium": "", "sizeLimit": None}})
    result = {
        "containers": containers,
        "volumes": volumes,
        "restartPolicy": spec.get("restartPolicy", "Always"),
        "hostname": hostname,
        "nodeSelector": dict(as_map(spec.get("nodeSelector"))),
        **security.normalise_pod(spec),
    }
    inits = []
    for c in map(as_map, as_list(spec.get("initContainers"))):
        inits.append(_normalise_container(c))
        context = security.normalise_container(spec, c)
        if context is not None:
            inits[-1]["securityContext"] = context
    if inits:  # only then: a pod without init containers keeps the spec hash it had
        result["initContainers"] = inits
    return result


def _quantity_or_none(value: Any, convert: Any) -> int | None:
    return None if value in (None, "") else int(convert(value))


def _containers(
    settings: Settings,
    namespace: str,
    pod_name: str,
    spec: Mapping[str, Any],
    manifest: Manifest,
    spec_path: tuple[str | int, ...],
    services: Sequence[DesiredService] = (),
    publish_on: str = "",
    config: PodConfig | None = None,
    host_address: str = "",
) -> tuple[DesiredContainer, ...]:
    """The infra container, the init containers (in the order they run) and the app
    containers of one pod.

    ``publish_on``: with several hosts, every declared port without a hostPort is
    published on that address at a port Docker picks, so that Service forwarders on other
    hosts reach the pod. Service env vars are added here, outside the spec hash: adding a
    Service never recreates running pods (as in Kubernetes, only new containers see it).
    ``host_address``: where a hostPort without a hostIP binds (see :func:`host_port_ip`).
    """
    hostname = spec["hostname"]
    published: list[PortBinding] = []
    apps: list[DesiredContainer] = []
    volumes = {v["name"]: v for v in spec["volumes"]}
    inits = spec.get("initContainers", ())
    listed = [("initContainers", L.ROLE_INIT, i, c) for i, c in enumerate(inits)]
    listed += [("containers", L.ROLE_APP, i, c) for i, c in enumerate(spec["containers"])]
    for field, role, index, c in listed:
        for p in c["ports"] if role == L.ROLE_APP else ():
            if p["hostPort"] is not None:
                host_ip = p["hostIP"] or host_port_ip(host_address)
                published.append(
                    PortBinding(p["containerPort"], p["protocol"], p["hostPort"], host_ip)
                )
            elif publish_on and p["protocol"] != "SCTP":
                published.append(PortBinding(p["containerPort"], p["protocol"], 0, publish_on))
        limits, requests = c["resources"]["limits"], c["resources"]["requests"]
        cpu_request = requests.get("cpu")
        mounts = tuple(
            MountSpec(m["name"], m["mountPath"], m["readOnly"] or _read_only(volumes[m["name"]]))
            for m in c["volumeMounts"]
            if m["name"] in volumes
        )
        env = tuple((e["name"], e["value"]) for e in c["env"])
        if config is not None and c["name"] in config.env:
            env = tuple(config.env[c["name"]])
        apps.append(
            DesiredContainer(
                docker_name=docker_name(settings.instance, namespace, pod_name, c["name"]),
                container=c["name"],
                role=role,
                image=c["image"],
                pull_policy=c["imagePullPolicy"],
                entrypoint=tuple(c["command"]) if c["command"] is not None else None,
                cmd=tuple(c["args"]) if c["args"] is not None else None,
                env=service_env(services, namespace, (name for name, _ in env)) + env,
                working_dir=c["workingDir"],
                nano_cpus=_quantity_or_none(limits.get("cpu"), cpu_to_nano),
                cpu_shares=(
                    max(2, int(parse_quantity(cpu_request) * 1024)) if cpu_request else None
                ),
                memory_bytes=_quantity_or_none(limits.get("memory"), memory_to_bytes),
                memory_reservation=_quantity_or_none(requests.get("memory"), memory_to_bytes),
                mounts=mounts,
                restart_policy=spec["restartPolicy"],
                source=manifest.locate(spec_path + (field, index)),
                pod_ip_env=tuple(config.pod_ip_env.get(c["name"], ())) if config else (),
                pull_auth=config.pull_auth if config else (),
                probes=probes_of(c),
                security=security.security_spec(c.get("securityContext")),
            )
        )
    infra = DesiredContainer(
        docker_name=docker_name(settings.instance, namespace, pod_name, L.INFRA_CONTAINER),
        container=L.INFRA_CONTAINER,
        role=L.ROLE_INFRA,
        image=settings.infra_image,
        pull_policy="IfNotPresent",
        ports=tuple(published),
        hostname=hostname,
        restart_policy="Always",
        source=manifest.locate(spec_path),
    )
    return (infra, *apps)


def _read_only(volume: Mapping[str, Any]) -> bool:
    """Secret, ConfigMap, downwardAPI and projected volumes are always mounted read-only, as
    in Kubernetes; a claim when it says so."""
    claim = volume.get("persistentVolumeClaim")
    return any(k in volume for k in FILE_SOURCES) or bool(claim and claim["readOnly"])


def _volume_specs(
    settings: Settings,
    namespace: str,
    pod_name: str,
    spec: Mapping[str, Any],
    config: PodConfig | None = None,
    ctx: PodContext | None = None,
    host: str = "",
) -> tuple[VolumeSpec, ...]:
    result = []
    for v in spec["volumes"]:
        if any(k in v for k in FILE_SOURCES):
            result.append(
                VolumeSpec(
                    name=v["name"],
                    source="files",
                    docker_name=docker_name(settings.instance, namespace, pod_name, v["name"]),
                    medium="Memory",
                    files=config.files.get(v["name"], ()) if config else (),
                )
            )
            continue
        if "persistentVolumeClaim" in v:
            claim_name = v["persistentVolumeClaim"]["claimName"]
            claim = ctx.claims.get((namespace, claim_name)) if ctx else None
            target = ctx.hosts.get(host) if ctx else None
            driver, options = (
                driver_for(claim, target) if claim and target else (DEFAULT_VOLUME_DRIVER, ())
            )
            result.append(
                VolumeSpec(
                    name=v["name"],
                    source="claim",
                    docker_name=claim_volume_name(settings.instance, namespace, claim_name),
                    claim=claim_name,
                    driver=driver,
                    driver_opts=options,
                    claim_labels=claim_labels(settings.instance, namespace, claim_name),
                )
            )
            continue
        if "emptyDir" in v:
            size = v["emptyDir"]["sizeLimit"]
            result.append(
                VolumeSpec(
                    name=v["name"],
                    source="emptyDir",
                    docker_name=docker_name(settings.instance, namespace, pod_name, v["name"]),
                    medium=v["emptyDir"]["medium"],
                    size_bytes=memory_to_bytes(size) if size else None,
                )
            )
        else:
            result.append(VolumeSpec(v["name"], "hostPath", host_path=v["hostPath"]["path"]))
    return tuple(result)


def pod(
    ctx: PodContext,
    manifest: Manifest,
    owner: ObjectRef,
    name: str,
    pod_labels: Mapping[str, str],
    raw_spec: Mapping[str, Any],
    spec_path: tuple[str | int, ...],
    host: str,
    replica: int | None,
) -> DesiredPod:
    spec = normalise_pod_spec(raw_spec, pod_hostname(raw_spec, name))
    return pod_from_spec(
        ctx, manifest, owner, name, pod_labels, raw_spec, spec, spec_path, host, replica
    )


def pod_hostname(raw_spec: Mapping[str, Any], name: str) -> str:
    """The pod's hostname: its spec's, else its name (both cut to a DNS label)."""
    return str(raw_spec.get("hostname") or name)[:63].rstrip("-.")


def hash_input(
    ctx: PodContext,
    owner: ObjectRef,
    pod_labels: Mapping[str, str],
    spec: Mapping[str, Any],
    publish_on: str,
) -> dict[str, Any]:
    """Everything the spec hash covers: the normalised spec and what else makes the pod."""
    hashed: dict[str, Any] = {
        "spec": spec,
        "owner": [owner.kind, owner.namespace, owner.name],
        "labels": dict(pod_labels),
        "infraImage": ctx.settings.infra_image,
        "network": [ctx.network.name, ctx.network.subnet],
        "publishPorts": bool(publish_on),  # not the address: the hash stays host-independent
    }
    ports = [p for c in spec["containers"] for p in c["ports"]]
    if any(p["hostPort"] is not None and not p["hostIP"] for p in ports):
        # hostPorts bind the host's address, no longer every address: pods made before
        # that are recreated once to bind the narrower way
        hashed["hostPortsOn"] = "address"
    return hashed


def pod_from_spec(
    ctx: PodContext,
    manifest: Manifest,
    owner: ObjectRef,
    name: str,
    pod_labels: Mapping[str, str],
    raw_spec: Mapping[str, Any],
    spec: dict[str, Any],
    spec_path: tuple[str | int, ...],
    host: str,
    replica: int | None,
) -> DesiredPod:
    """One pod from its already normalised ``spec`` (``normalise_pod_spec``)."""
    settings = ctx.settings
    publish_on = ctx.addresses.get(host, "") if ctx.multi_host else ""
    target = ctx.hosts.get(host)
    facts = PodFacts(
        namespace=owner.namespace,
        name=name,
        labels=dict(pod_labels),
        annotations=_annotations(manifest, spec_path),
        host=host,
        host_address=ctx.addresses.get(host, ""),
        host_cpu_nano=target.cpu_nano if target else None,
        host_memory_bytes=target.memory_bytes if target else None,
    )
    config = resolve(
        ctx.configs,
        facts,
        raw_spec,
        spec,
        [str(as_map(v).get("name")) for v in as_list(raw_spec.get("volumes"))],
    )
    if config.problems:
        raise PodProblem(config.problems[0][1], spec_path)
    try:
        volumes = _volume_specs(settings, owner.namespace, name, spec, config, ctx, host)
    except ValueError as exc:
        raise PodProblem(str(exc), spec_path + ("volumes",)) from exc
    hashed = hash_input(ctx, owner, pod_labels, spec, publish_on)
    return DesiredPod(
        namespace=owner.namespace,
        name=name,
        owner=owner,
        host=host,
        labels=dict(pod_labels),
        spec=redact_spec(spec),  # what a label keeps and a plan shows: digests of secrets
        spec_hash=L.spec_hash(hashed),
        containers=_containers(
            settings,
            owner.namespace,
            name,
            spec,
            manifest,
            spec_path,
            ctx.services,
            publish_on,
            config,
            ctx.addresses.get(host, ""),
        ),
        volumes=volumes,
        restart_policy=spec["restartPolicy"],
        source=manifest.source,
        replica=replica,
        network=ctx.network,
        host_namespaces=security.host_namespaces(spec),
        sysctls=security.sysctls(spec),
    )


def _requests(container: Mapping[str, Any]) -> tuple[int, int]:
    requests = as_map(as_map(container.get("resources")).get("requests"))
    limits = as_map(as_map(container.get("resources")).get("limits"))
    cpu_value = requests.get("cpu", limits.get("cpu"))
    memory_value = requests.get("memory", limits.get("memory"))
    return (
        cpu_to_nano(cpu_value) if cpu_value is not None else 0,
        memory_to_bytes(memory_value) if memory_value is not None else 0,
    )


def host_port_ip(address: str) -> str:
    """Where a hostPort without a hostIP binds: the host's ``address`` from the hosts file
    (127.0.0.1 for the local engine), not every address of the host, so that a port meant
    for the hosts' own network is not published to every network the host is on. An
    address that is not an IP literal (a DNS name) cannot be bound: every address then."""
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return ""
    return address


def spec_requests(spec: Mapping[str, Any]) -> tuple[int, int]:
    """Total cpu (nano) and memory (bytes) requested by a pod, for capacity placement.

    As Kubernetes counts them: the app containers' sum, or the largest init container's
    request when that is more (init containers run one at a time, before the apps)."""
    cpu = memory = 0
    for c in map(as_map, as_list(spec.get("containers"))):
        container_cpu, container_memory = _requests(c)
        cpu, memory = cpu + container_cpu, memory + container_memory
    for c in map(as_map, as_list(spec.get("initContainers"))):
        init_cpu, init_memory = _requests(c)
        cpu, memory = max(cpu, init_cpu), max(memory, init_memory)
    return cpu, memory
