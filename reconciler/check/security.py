"""What is checked of a pod's securityContext and host namespaces whatever the policy: the
settings the reconciler cannot carry out as written, and those that contradict each other.

Whether a manifest may use them at all is the operator's policy (``check.policy``); this
module says whether what it asks makes sense on Docker, so that an allowed setting is
honoured exactly, never silently approximated.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.check.report import Reporter
from reconciler.core.model import FieldPath, as_list, as_map, pod_containers
from reconciler.core.text import shown

#: The Linux capabilities (capabilities(7)) and ``ALL``, as Kubernetes writes them.
CAPABILITIES = frozenset(
    {
        "ALL",
        "AUDIT_CONTROL",
        "AUDIT_READ",
        "AUDIT_WRITE",
        "BLOCK_SUSPEND",
        "BPF",
        "CHECKPOINT_RESTORE",
        "CHOWN",
        "DAC_OVERRIDE",
        "DAC_READ_SEARCH",
        "FOWNER",
        "FSETID",
        "IPC_LOCK",
        "IPC_OWNER",
        "KILL",
        "LEASE",
        "LINUX_IMMUTABLE",
        "MAC_ADMIN",
        "MAC_OVERRIDE",
        "MKNOD",
        "NET_ADMIN",
        "NET_BIND_SERVICE",
        "NET_BROADCAST",
        "NET_RAW",
        "PERFMON",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYSLOG",
        "SYS_ADMIN",
        "SYS_BOOT",
        "SYS_CHROOT",
        "SYS_MODULE",
        "SYS_NICE",
        "SYS_PACCT",
        "SYS_PTRACE",
        "SYS_RAWIO",
        "SYS_RESOURCE",
        "SYS_TIME",
        "SYS_TTY_CONFIG",
        "WAKE_ALARM",
    }
)


def _profiles(report: Reporter, path: FieldPath, context: Mapping[str, Any]) -> None:
    seccomp = as_map(context.get("seccompProfile"))
    if seccomp.get("type") == "Localhost":
        report.error(
            path + ("seccompProfile", "type"),
            "a Localhost seccomp profile is not supported (Docker takes the profile itself, "
            "not a file on the host): use RuntimeDefault, or Unconfined where the policy "
            "allows it",
        )
    apparmor = as_map(context.get("appArmorProfile"))
    if apparmor.get("type") == "Localhost" and not apparmor.get("localhostProfile"):
        report.error(
            path + ("appArmorProfile", "localhostProfile"),
            "a Localhost AppArmor profile needs localhostProfile: the profile's name",
        )


def check_security(report: Reporter, path: FieldPath, spec: Mapping[str, Any]) -> None:
    """The securityContext of a pod spec and of each of its containers."""
    pod_context = as_map(spec.get("securityContext"))
    _profiles(report, path + ("securityContext",), pod_context)
    seen: dict[str, int] = {}
    for index, sysctl in enumerate(as_list(pod_context.get("sysctls"))):
        name = as_map(sysctl).get("name")
        if isinstance(name, str):
            if name in seen:
                report.error(
                    path + ("securityContext", "sysctls", index, "name"),
                    f"sysctl {shown(name)} is set twice (also sysctls[{seen[name]}])",
                )
            seen.setdefault(name, index)
    host_network = spec.get("hostNetwork") is True
    for at, container in pod_containers(spec):
        cpath = path + at
        context = as_map(container.get("securityContext"))
        sc = cpath + ("securityContext",)
        _profiles(report, sc, context)
        capabilities = as_map(context.get("capabilities"))
        for key in ("add", "drop"):
            for index, capability in enumerate(as_list(capabilities.get(key))):
                name = str(capability).upper().removeprefix("CAP_")
                if name not in CAPABILITIES:
                    report.error(
                        sc + ("capabilities", key, index),
                        f"{shown(capability)} is not a Linux capability (e.g. NET_ADMIN)",
                    )
        user = context.get("runAsUser", pod_context.get("runAsUser"))
        group = context.get("runAsGroup", pod_context.get("runAsGroup"))
        if group is not None and user is None:
            report.error(
                sc + ("runAsGroup",) if "runAsGroup" in context else path + ("securityContext",),
                "runAsGroup needs runAsUser (Docker sets the user and group together)",
            )
        if context.get("runAsNonRoot", pod_context.get("runAsNonRoot")) is True and user == 0:
            report.error(
                sc + ("runAsUser",) if "runAsUser" in context else sc,
                "runAsNonRoot is true but runAsUser is 0 (root): the container could never start",
            )
        if host_network:
            for pindex, port in enumerate(as_list(container.get("ports"))):
                port = as_map(port)
                host_port, number = port.get("hostPort"), port.get("containerPort")
                if isinstance(host_port, int) and host_port != number:
                    report.error(
                        cpath + ("ports", pindex, "hostPort"),
                        f"with hostNetwork, hostPort must equal containerPort ({number}); "
                        f"got {host_port}",
                    )
