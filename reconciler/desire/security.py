"""A pod's securityContext, hostNetwork, hostPID and hostIPC as the desired state holds them.
Pure.

These fields are honoured, never ignored: the operator's policy (``check.policy``) decided
which of them a manifest may use, so whatever reached here runs as written. Two steps:

- :func:`normalise_container` and :func:`normalise_pod` give the canonical form that the
  spec hash covers. Only what differs from Docker's defaults is written, so that a pod
  without any of these fields keeps the hash it had before they were honoured (no
  recreate on upgrade), and a change to any of them recreates the pod;
- :func:`security_spec` turns a container's canonical form into the ``SecuritySpec`` the
  engine applies (capabilities, user, Docker's security options).

A container's settings win over the pod's, field by field, as in Kubernetes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.core.model import SecuritySpec, as_list, as_map

#: Pod fields -> the host namespace each one shares.
HOST_NAMESPACES = {"hostNetwork": "network", "hostPID": "pid", "hostIPC": "ipc"}
#: Fields a container inherits from the pod's securityContext when it does not set them.
_INHERITED = ("runAsUser", "runAsGroup", "runAsNonRoot", "seccompProfile", "appArmorProfile")


def capability(value: Any) -> str:
    """A capability as Kubernetes writes it: ``NET_ADMIN`` (``CAP_`` and case aside)."""
    text = str(value).upper()
    return text[4:] if text.startswith("CAP_") else text


def normalise_pod(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The pod-level fields to add to the canonical spec (none for a plain pod)."""
    out: dict[str, Any] = {}
    for field in HOST_NAMESPACES:
        if spec.get(field) is True:
            out[field] = True
    context = as_map(spec.get("securityContext"))
    sysctls = [
        {"name": str(s.get("name")), "value": str(s.get("value"))}
        for s in map(as_map, as_list(context.get("sysctls")))
    ]
    if sysctls:
        out["sysctls"] = sysctls
    return out


def normalise_container(
    pod_spec: Mapping[str, Any], container: Mapping[str, Any]
) -> dict[str, Any] | None:
    """A container's effective securityContext in canonical form; None when it has nothing
    that differs from Docker's defaults."""
    pod_context = as_map(pod_spec.get("securityContext"))
    own = as_map(container.get("securityContext"))
    merged: dict[str, Any] = {k: pod_context[k] for k in _INHERITED if k in pod_context}
    merged.update({k: v for k, v in own.items() if v is not None})
    if "seLinuxOptions" not in own and "seLinuxOptions" in pod_context:
        merged["seLinuxOptions"] = pod_context["seLinuxOptions"]
    out: dict[str, Any] = {}
    if merged.get("privileged") is True:
        out["privileged"] = True
    caps = as_map(merged.get("capabilities"))
    for key in ("add", "drop"):
        names = sorted({capability(c) for c in as_list(caps.get(key))})
        if names:
            out.setdefault("capabilities", {})[key] = names
    if merged.get("allowPrivilegeEscalation") is False:
        out["allowPrivilegeEscalation"] = False
    if merged.get("readOnlyRootFilesystem") is True:
        out["readOnlyRootFilesystem"] = True
    for key in ("runAsUser", "runAsGroup"):
        if isinstance(merged.get(key), int) and not isinstance(merged.get(key), bool):
            out[key] = merged[key]
    if merged.get("runAsNonRoot") is True:
        out["runAsNonRoot"] = True
    for key in ("seccompProfile", "appArmorProfile"):
        profile = as_map(merged.get(key))
        kind = profile.get("type")
        if kind in ("Unconfined", "Localhost"):
            out[key] = {"type": kind, "localhostProfile": str(profile.get("localhostProfile", ""))}
    selinux = {k: str(v) for k, v in as_map(merged.get("seLinuxOptions")).items() if v}
    if selinux:
        out["seLinuxOptions"] = dict(sorted(selinux.items()))
    if merged.get("procMount") == "Unmasked":
        out["procMount"] = "Unmasked"
    groups = [str(g) for g in as_list(pod_context.get("supplementalGroups")) if isinstance(g, int)]
    if groups:
        out["supplementalGroups"] = groups
    return out or None


def security_spec(normalised: Mapping[str, Any] | None) -> SecuritySpec | None:
    """What the engine applies for a container's canonical securityContext."""
    if not normalised:
        return None
    options: list[str] = []
    if normalised.get("allowPrivilegeEscalation") is False:
        options.append("no-new-privileges:true")
    seccomp = as_map(normalised.get("seccompProfile"))
    if seccomp.get("type") == "Unconfined":
        options.append("seccomp=unconfined")
    apparmor = as_map(normalised.get("appArmorProfile"))
    if apparmor.get("type") == "Unconfined":
        options.append("apparmor=unconfined")
    elif apparmor.get("type") == "Localhost":
        options.append(f"apparmor={apparmor.get('localhostProfile', '')}")
    for key, value in as_map(normalised.get("seLinuxOptions")).items():
        options.append(f"label={key}:{value}")
    if normalised.get("procMount") == "Unmasked":
        options.append("systempaths=unconfined")
    user = ""
    if "runAsUser" in normalised:
        user = str(normalised["runAsUser"])
        if "runAsGroup" in normalised:
            user += f":{normalised['runAsGroup']}"
    caps = as_map(normalised.get("capabilities"))
    return SecuritySpec(
        privileged=normalised.get("privileged") is True,
        cap_add=tuple(caps.get("add", ())),
        cap_drop=tuple(caps.get("drop", ())),
        user=user,
        group_add=tuple(normalised.get("supplementalGroups", ())),
        run_as_non_root=normalised.get("runAsNonRoot") is True,
        read_only_root=normalised.get("readOnlyRootFilesystem") is True,
        security_opt=tuple(options),
    )


def host_namespaces(normalised_pod: Mapping[str, Any]) -> frozenset[str]:
    """The host namespaces a canonical pod spec joins."""
    return frozenset(ns for field, ns in HOST_NAMESPACES.items() if normalised_pod.get(field))


def sysctls(normalised_pod: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple((s["name"], s["value"]) for s in normalised_pod.get("sysctls", ()))
