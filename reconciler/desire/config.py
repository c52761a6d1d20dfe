"""What a pod takes from Secrets, ConfigMaps and the downward API, resolved. Pure.

Values go two ways. To the engine, in full: the env vars of each container, the files of
each Secret, ConfigMap, downwardAPI or projected volume (written into a tmpfs volume before
the containers start), registry credentials. Into the pod's spec (which the spec hash
covers and a label keeps, and which a plan compares), only what says *which* value and a
digest of it: ``<secret sha256:…>`` for a Secret's, ``<configMap sha256:…>`` for a
ConfigMap's. So a changed Secret changes the spec hash of exactly the pods that use it,
and the reconciler's outputs can say it changed without saying what it is.

A pod that uses none of this gets exactly the spec it had before (its hash is unchanged).
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler.core.model import FileSpec, Manifest, as_list, as_map
from reconciler.core.names import env_name
from reconciler.core.quantity import parse_quantity
from reconciler.core.redact import digest, secret_marker

#: read-only for everyone unless defaultMode says otherwise (Kubernetes' own is 0644)
FILES_DEFAULT_MODE = 0o444
_BY_KEY = re.compile(r"^metadata\.(labels|annotations)\['([^']*)'\]$")


@dataclass(frozen=True)
class ConfigObject:
    """A Secret's or ConfigMap's content (decoded), by key."""

    kind: str
    namespace: str
    name: str
    data: Mapping[str, bytes] = field(repr=False)
    secret_type: str = ""

    @property
    def secret(self) -> bool:
        return self.kind == "Secret"

    def marker(self, value: bytes, context: str) -> str:
        """What the spec keeps of ``value``: its digest, marked as a secret's or not."""
        where = f"{self.kind}/{self.namespace}/{self.name}/{context}"
        if self.secret:
            return secret_marker(value, where)
        return f"<configMap {digest(value, where)}>"


ConfigIndex = Mapping[tuple[str, str, str], ConfigObject]


def config_index(manifests: Iterable[Manifest]) -> dict[tuple[str, str, str], ConfigObject]:
    """Every Secret and ConfigMap by (kind, namespace, name), its values decoded. Manifests
    are valid (and decrypted): ``data`` and ``binaryData`` are base64."""
    index: dict[tuple[str, str, str], ConfigObject] = {}
    for m in manifests:
        if m.kind not in ("Secret", "ConfigMap"):
            continue
        body = m.body
        data: dict[str, bytes] = {}
        encoded = "data" if m.kind == "Secret" else "binaryData"
        plain = "stringData" if m.kind == "Secret" else "data"
        for key, value in as_map(body.get(encoded)).items():
            data[key] = base64.b64decode(str(value))
        for key, value in as_map(body.get(plain)).items():
            data[key] = str(value).encode()
        kind_type = str(body.get("type", "Opaque")) if m.kind == "Secret" else ""
        index[(m.kind, m.namespace, m.name)] = ConfigObject(
            m.kind, m.namespace, m.name, data, kind_type
        )
    return index


@dataclass(frozen=True)
class PodFacts:
    """What the downward API can tell a pod about itself."""

    namespace: str
    name: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    host: str
    host_address: str
    host_cpu_nano: int | None = None
    host_memory_bytes: int | None = None


@dataclass
class PodConfig:
    """The resolution of one pod: its spec with references and digests, and for the engine
    each container's env (in Docker's order), the names to fill with the pod's address,
    and each files volume's files."""

    spec: dict[str, Any]
    env: dict[str, list[tuple[str, str]]] = field(default_factory=dict, repr=False)
    pod_ip_env: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, tuple[FileSpec, ...]] = field(default_factory=dict, repr=False)
    pull_auth: tuple[tuple[str, str, str], ...] = field(default=(), repr=False)
    problems: list[tuple[tuple[str | int, ...], str]] = field(default_factory=list)


def _resource_value(
    resource: Mapping[str, Any], container: Mapping[str, Any], pod: PodFacts
) -> str:
    """``resourceFieldRef``: the container's limit (or request), rounded up in units of the
    divisor; a missing limit is the host's capacity, as Kubernetes uses the node's."""
    kind, _, what = str(resource.get("resource", "")).partition(".")
    resources = as_map(container.get("resources"))
    written = as_map(resources.get(kind)).get(what)
    if written is None and kind == "requests":
        written = as_map(resources.get("limits")).get(what)
    if written is not None:
        amount = parse_quantity(written)
    elif what == "cpu" and pod.host_cpu_nano is not None:
        amount = parse_quantity(pod.host_cpu_nano) / 1_000_000_000
    elif what == "memory" and pod.host_memory_bytes is not None:
        amount = parse_quantity(pod.host_memory_bytes)
    else:
        raise ValueError(
            f"container {container.get('name')} has no {what} {kind[:-1]} and host "
            f"{pod.host} declares no {what} capacity in the hosts file"
        )
    divisor = parse_quantity(resource.get("divisor", "1") or "1") or parse_quantity(1)
    return str(math.ceil(amount / divisor))


def _field_value(field_path: str, pod: PodFacts) -> str:
    match = _BY_KEY.match(field_path)
    if match:
        source = pod.labels if match[1] == "labels" else pod.annotations
        return str(source.get(match[2], ""))
    if field_path in ("metadata.labels", "metadata.annotations"):  # a downwardAPI file
        source = pod.labels if field_path == "metadata.labels" else pod.annotations
        return "\n".join(f"{k}={json.dumps(v)}" for k, v in sorted(source.items()))
    return {
        "metadata.name": pod.name,
        "metadata.namespace": pod.namespace,
        "spec.nodeName": pod.host,
        "status.hostIP": pod.host_address,
    }.get(field_path, "")


class _Resolver:
    def __init__(self, configs: ConfigIndex, pod: PodFacts, raw: Mapping[str, Any]) -> None:
        self.configs = configs
        self.pod = pod
        self.containers = {
            str(as_map(c).get("name")): as_map(c) for c in as_list(raw.get("containers"))
        }
        self.problems: list[tuple[tuple[str | int, ...], str]] = []

    def lookup(self, kind: str, name: Any) -> ConfigObject | None:
        return self.configs.get((kind, self.pod.namespace, str(name)))

    def env(
        self, container: Mapping[str, Any]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[tuple[str, str]], list[str]]:
        """(env entries for the spec, envFrom entries for the spec, Docker env, pod IP
        names) of one container, in Kubernetes' order: envFrom, then env, later wins."""
        spec_from: list[dict[str, Any]] = []
        values: dict[str, str] = {}
        for source in map(as_map, as_list(container.get("envFrom"))):
            kind, ref_field = (
                ("Secret", "secretRef") if "secretRef" in source else ("ConfigMap", "configMapRef")
            )
            ref = as_map(source.get(ref_field))
            found = self.lookup(kind, ref.get("name"))
            prefix = str(source.get("prefix", ""))
            pairs = sorted(found.data.items()) if found else []
            kept = [(prefix + k, v) for k, v in pairs if not env_name(prefix + k)]
            content = b"\0".join(k.encode() + b"=" + v for k, v in kept)
            entry: dict[str, Any] = {"from": f"{ref_field} {ref.get('name')}"}
            if prefix:
                entry["prefix"] = prefix
            entry["value"] = found.marker(content, "envFrom") if found else "<absent>"
            spec_from.append(entry)
            for key, value in kept:
                values[key] = value.decode("utf-8", errors="replace")
        spec_env: list[dict[str, Any]] = []
        pod_ip: list[str] = []
        for e in map(as_map, as_list(container.get("env"))):
            name = str(e.get("name"))
            if "valueFrom" not in e:
                spec_env.append({"name": name, "value": str(e.get("value", ""))})
                values[name] = str(e.get("value", ""))
                continue
            value_from = as_map(e["valueFrom"])
            entry = {"name": name}
            resolved: str | None = None
            for ref_field, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
                if ref_field in value_from:
                    ref = as_map(value_from[ref_field])
                    found = self.lookup(kind, ref.get("name"))
                    raw = found.data.get(str(ref.get("key"))) if found else None
                    entry["valueFrom"] = f"{ref_field} {ref.get('name')}/{ref.get('key')}"
                    if found is not None and raw is not None:
                        entry["value"] = found.marker(raw, str(ref.get("key")))
                        resolved = raw.decode("utf-8", errors="replace")
                    else:  # optional and absent: the variable is not set
                        entry["value"] = "<absent>"
            if "fieldRef" in value_from:
                field_path = str(as_map(value_from["fieldRef"]).get("fieldPath"))
                entry["valueFrom"] = f"fieldRef {field_path}"
                entry["value"] = f"<fieldRef {field_path}>"
                if field_path == "status.podIP":
                    pod_ip.append(name)
                    resolved = ""
                else:
                    resolved = _field_value(field_path, self.pod)
            if "resourceFieldRef" in value_from:
                resource = as_map(value_from["resourceFieldRef"])
                target = self.containers.get(
                    str(resource.get("containerName") or container.get("name")), container
                )
                entry["valueFrom"] = f"resourceFieldRef {resource.get('resource')}"
                try:
                    resolved = _resource_value(resource, target, self.pod)
                    entry["value"] = resolved
                except ValueError as exc:
                    self.problems.append((("containers",), str(exc)))
            spec_env.append(entry)
            if resolved is not None:
                values[name] = resolved
            else:
                values.pop(name, None)
        return spec_from, spec_env, list(values.items()), pod_ip

    def items(self, found: ConfigObject | None, items: Any, mode: int) -> list[FileSpec]:
        if found is None:
            return []
        listed = [as_map(i) for i in as_list(items)]
        if not listed:
            return [FileSpec(k, v, mode) for k, v in sorted(found.data.items())]
        files = []
        for item in listed:
            key = str(item.get("key"))
            if key in found.data:
                files.append(
                    FileSpec(str(item.get("path")), found.data[key], int(item.get("mode", mode)))
                )
        return files

    def downward(self, items: Any, mode: int) -> list[FileSpec]:
        files = []
        for item in map(as_map, as_list(items)):
            if "fieldRef" in item:
                text = _field_value(str(as_map(item["fieldRef"]).get("fieldPath")), self.pod)
            else:
                resource = as_map(item.get("resourceFieldRef"))
                target = self.containers.get(str(resource.get("containerName")), {})
                try:
                    text = _resource_value(resource, target, self.pod)
                except ValueError as exc:
                    self.problems.append((("volumes",), str(exc)))
                    continue
            files.append(
                FileSpec(str(item.get("path")), text.encode(), int(item.get("mode", mode)))
            )
        return files

    def volume(self, volume: Mapping[str, Any]) -> tuple[dict[str, Any], list[FileSpec], bool]:
        """(the volume's spec entry, its files, whether any file came from a Secret)."""
        name = volume.get("name")
        kind = next(k for k in FILE_SOURCES if k in volume)
        mode = int(as_map(volume[kind]).get("defaultMode", FILES_DEFAULT_MODE))
        files: list[FileSpec] = []
        secret = False
        entry: dict[str, Any]
        if "secret" in volume:
            source = as_map(volume["secret"])
            found = self.lookup("Secret", source.get("secretName"))
            files = self.items(found, source.get("items"), mode)
            secret = True
            entry = {"secret": {"secretName": source.get("secretName"), "defaultMode": mode}}
        elif "configMap" in volume:
            source = as_map(volume["configMap"])
            found = self.lookup("ConfigMap", source.get("name"))
            files = self.items(found, source.get("items"), mode)
            entry = {"configMap": {"name": source.get("name"), "defaultMode": mode}}
        elif "downwardAPI" in volume:
            files = self.downward(as_map(volume["downwardAPI"]).get("items"), mode)
            entry = {"downwardAPI": {"defaultMode": mode}}
        else:
            sources = []
            for source in map(as_map, as_list(as_map(volume.get("projected")).get("sources"))):
                for kind, field_name in (("Secret", "secret"), ("ConfigMap", "configMap")):
                    if field_name in source:
                        ref = as_map(source[field_name])
                        found = self.lookup(kind, ref.get("name"))
                        files += self.items(found, ref.get("items"), mode)
                        secret = secret or kind == "Secret"
                        sources.append(f"{field_name} {ref.get('name')}")
                if "downwardAPI" in source:
                    files += self.downward(as_map(source["downwardAPI"]).get("items"), mode)
                    sources.append("downwardAPI")
            entry = {"projected": {"sources": sources, "defaultMode": mode}}
        content = b"".join(
            f"{f.path}\0{f.mode:o}\0{len(f.data)}\0".encode() + f.data for f in files
        )
        where = f"volume/{self.pod.namespace}/{name}"
        marker = secret_marker(content, where) if secret else f"<files {digest(content, where)}>"
        (only,) = entry.values()
        only["content"] = marker
        return {"name": name, **entry}, files, secret


FILE_SOURCES = ("secret", "configMap", "downwardAPI", "projected")


def uses_config(raw: Mapping[str, Any]) -> bool:
    """Whether a pod spec takes anything from Secrets, ConfigMaps or the downward API."""
    listed = as_list(raw.get("initContainers")) + as_list(raw.get("containers"))
    for c in map(as_map, listed):
        if c.get("envFrom") or any("valueFrom" in as_map(e) for e in as_list(c.get("env"))):
            return True
    return any(k in as_map(v) for v in as_list(raw.get("volumes")) for k in FILE_SOURCES)


def pull_credentials(
    configs: ConfigIndex, namespace: str, raw: Mapping[str, Any]
) -> tuple[tuple[str, str, str], ...]:
    """(registry, username, password) from the pod's imagePullSecrets (dockerconfigjson)."""
    found: list[tuple[str, str, str]] = []
    for entry in map(as_map, as_list(raw.get("imagePullSecrets"))):
        secret = configs.get(("Secret", namespace, str(entry.get("name"))))
        if secret is None:
            continue
        try:
            auths = json.loads(secret.data.get(".dockerconfigjson", b"{}")).get("auths", {})
        except (ValueError, AttributeError):
            continue
        for registry, auth in as_map(auths).items():
            auth = as_map(auth)
            user, password = str(auth.get("username", "")), str(auth.get("password", ""))
            if auth.get("auth") and not (user or password):
                decoded = base64.b64decode(str(auth["auth"])).decode(errors="replace")
                user, _, password = decoded.partition(":")
            found.append((str(registry), user, password))
    return tuple(found)


def resolve(
    configs: ConfigIndex,
    pod: PodFacts,
    raw: Mapping[str, Any],
    spec: dict[str, Any],
    volume_order: Sequence[str],
) -> PodConfig:
    """Extend the normalised ``spec`` with what the pod takes from elsewhere (references
    and digests only) and resolve the values for the engine. ``volume_order``: the names of
    the raw spec's volumes, so that new entries keep their written order."""
    result = PodConfig(spec=spec, pull_auth=pull_credentials(configs, pod.namespace, raw))
    if not uses_config(raw):
        return result
    resolver = _Resolver(configs, pod, raw)
    pairs = [
        (container, raw_container)
        for field in ("initContainers", "containers")  # init containers take values alike
        for container, raw_container in zip(
            spec.get(field, []), map(as_map, as_list(raw.get(field))), strict=False
        )
    ]
    for container, raw_container in pairs:
        spec_from, spec_env, docker_env, pod_ip = resolver.env(raw_container)
        container["env"] = spec_env
        if spec_from:
            container["envFrom"] = spec_from
        name = str(container["name"])
        result.env[name] = docker_env
        result.pod_ip_env[name] = pod_ip
    entries = {v["name"]: v for v in spec["volumes"]}
    for volume in map(as_map, as_list(raw.get("volumes"))):
        if any(k in volume for k in FILE_SOURCES):
            entry, files, _ = resolver.volume(volume)
            entries[str(volume.get("name"))] = entry
            result.files[str(volume.get("name"))] = tuple(files)
    spec["volumes"] = [entries[n] for n in volume_order if n in entries]
    result.problems = resolver.problems
    return result
