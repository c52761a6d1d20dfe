"""The operator's policy: what a manifest may ask of the hosts. Pure.

Whoever can push to the watched branch writes the manifests, so a manifest must never be
what decides that a container runs privileged, joins the host's namespaces or mounts its
files. The operator decides, with ``--policy`` (Kubernetes' Pod Security Standards levels)
and ``--allow-host-path``; ``validate``, ``diff``, ``apply`` and ``run`` all check every pod
template against it, and a violation is an error at the field's file:line that names the
rule, so nothing of that revision is applied.

- ``privileged``: anything goes (but the Docker socket, below).
- ``baseline`` (the default): no host namespaces (``hostNetwork``, ``hostPID``,
  ``hostIPC``), no ``privileged``, no capabilities beyond Docker's default set, no hostPath
  volumes, no hostPorts, no unconfined AppArmor or seccomp, no custom SELinux user or role
  or type outside the container types, no unmasked ``/proc``, only the safe sysctls.
- ``restricted``: baseline, and every container runs as a non-root user, may not escalate
  privileges (``allowPrivilegeEscalation: false``), drops ``ALL`` capabilities (adding back
  only ``NET_BIND_SERVICE``), uses the runtime's seccomp profile, and only volume types that
  hold no host data.

``--allow-host-path PREFIX`` (repeatable) allows hostPath volumes at or under ``PREFIX``
at any level. A path that is or holds the Docker (or containerd) socket gives whoever runs
in the container the whole host: it is allowed only when an ``--allow-host-path`` names
that very path, whatever the level (``--allow-host-path /var/run/docker.sock``; ``/`` or
``/var/run`` as a prefix is not enough).

Where a rule comes from: https://kubernetes.io/docs/concepts/security/pod-security-standards/
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from reconciler.check.report import Reporter
from reconciler.check.security import CAPABILITIES
from reconciler.core.model import FieldPath, as_list, as_map, pod_containers
from reconciler.core.text import shown


class Level(StrEnum):
    """The Pod Security Standards levels, from open to strict."""

    PRIVILEGED = "privileged"
    BASELINE = "baseline"
    RESTRICTED = "restricted"


#: Capabilities a baseline pod may add: Docker's (and containerd's) default set but NET_RAW.
BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)
#: Sysctls namespaced to the pod and harmless to the host (the standard's safe set).
SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
    }
)
#: SELinux types a baseline container may run as ("" is the runtime's default).
SELINUX_TYPES = frozenset(
    {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
)
#: Volume sources a restricted pod may use: none of them holds host data.
RESTRICTED_VOLUMES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
#: Where container engines listen: a container that can reach one owns the host.
ENGINE_SOCKETS = (
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/var/run/containerd/containerd.sock",
    "/run/containerd/containerd.sock",
)


@dataclass(frozen=True, slots=True)
class Policy:
    """What the operator allows manifests to ask of the hosts (never set by a manifest)."""

    level: Level = Level.BASELINE
    #: hostPath prefixes allowed at any level (``--allow-host-path``), normalised
    host_paths: tuple[str, ...] = ()

    @classmethod
    def from_flags(cls, level: str, host_paths: Iterable[str]) -> Policy:
        """From ``--policy`` and ``--allow-host-path`` values; ValueError names a bad one."""
        try:
            chosen = Level(level)
        except ValueError:
            raise ValueError(
                f"unknown policy {shown(level)} (use {', '.join(lv.value for lv in Level)})"
            ) from None
        paths = []
        for path in host_paths:
            if not path.startswith("/"):
                raise ValueError(f"--allow-host-path {shown(path)} must be an absolute path")
            paths.append(normal_path(path))
        return cls(chosen, tuple(dict.fromkeys(paths)))

    def allows_host_path(self, path: str) -> bool:
        """Whether a hostPath volume of ``path`` may be mounted (see the module docstring)."""
        path = normal_path(path)
        if exposes_engine(path):
            return path in self.host_paths
        if self.level is Level.PRIVILEGED:
            return True
        return any(path == p or path.startswith(p.rstrip("/") + "/") for p in self.host_paths)

    def describe(self) -> str:
        """For the service's start-up line: ``baseline (host paths: /srv)``."""
        if not self.host_paths:
            return self.level.value
        return f"{self.level.value} (host paths: {', '.join(self.host_paths)})"


def normal_path(path: str) -> str:
    """``/var//run/./docker.sock/`` as ``/var/run/docker.sock`` (``..`` is refused earlier)."""
    return posixpath.normpath(path) if path else path


def exposes_engine(path: str) -> bool:
    """Whether a host path is, or holds, a container engine's socket."""
    path = normal_path(path)
    prefix = path.rstrip("/") + "/"
    return any(socket == path or socket.startswith(prefix) for socket in ENGINE_SOCKETS)


_HOST_NAMESPACES = {"hostNetwork": "network", "hostPID": "processes", "hostIPC": "IPC"}


def _truthy(value: Any) -> bool:
    return value is True


class _Check:
    """The rules, applied to one pod spec; every violation is an error naming its rule."""

    def __init__(self, report: Reporter, policy: Policy, spec_path: FieldPath) -> None:
        self.report = report
        self.policy = policy
        self.spec_path = spec_path
        self.baseline = policy.level is not Level.PRIVILEGED
        self.restricted = policy.level is Level.RESTRICTED

    def deny(self, path: FieldPath, rule: str, why: str, hint: str = "") -> None:
        """An error at ``path``: the level and rule that forbid it, and what would allow it
        (``hint``; by default the level below that allows it)."""
        allow = hint or "--policy privileged allows it"
        self.report.error(
            self.spec_path + path, f"policy {self.policy.level.value}, rule {rule}: {why} ({allow})"
        )

    def deny_restricted(self, path: FieldPath, rule: str, why: str) -> None:
        """A rule of the restricted level only: the baseline level allows it."""
        self.deny(path, rule, why, "--policy baseline allows it")

    # -- the pod ----------------------------------------------------------------------------
    def pod(self, spec: Mapping[str, Any]) -> None:
        if self.baseline:
            for field, what in _HOST_NAMESPACES.items():
                if _truthy(spec.get(field)):
                    self.deny(
                        (field,), "host-namespaces", f"{field} gives the pod the host's {what}"
                    )
        pod_context = as_map(spec.get("securityContext"))
        if self.baseline:
            self.profiles(pod_context, ("securityContext",))
            for index, sysctl in enumerate(as_list(pod_context.get("sysctls"))):
                name = as_map(sysctl).get("name")
                if isinstance(name, str) and name not in SAFE_SYSCTLS:
                    self.deny(
                        ("securityContext", "sysctls", index, "name"),
                        "sysctls",
                        f"sysctl {shown(name)} is not in the safe set",
                    )
        self.volumes(spec)
        for at, container in pod_containers(spec):  # init containers obey it alike
            self.container(at, container, pod_context)

    def volumes(self, spec: Mapping[str, Any]) -> None:
        for index, volume in enumerate(as_list(spec.get("volumes"))):
            volume = as_map(volume)
            path: FieldPath = ("volumes", index)
            host_path = as_map(volume.get("hostPath")).get("path")
            if isinstance(host_path, str) and host_path.startswith("/"):
                self.host_path(path + ("hostPath", "path"), host_path)
            if self.restricted:
                for source in volume:
                    if source not in ("name", "hostPath") and source not in RESTRICTED_VOLUMES:
                        self.deny_restricted(
                            path + (source,),
                            "volume-types",
                            f"a {source} volume may hold host data",
                        )

    def host_path(self, path: FieldPath, host_path: str) -> None:
        if self.policy.allows_host_path(host_path):
            return
        normal = normal_path(host_path)
        if exposes_engine(normal):
            why = (
                f"hostPath {shown(normal)} holds the container engine's socket, which gives the "
                "pod the whole host"
            )
            allow = f"only --allow-host-path {normal}, that exact path, allows it"
            self.deny(path, "docker-socket", why, allow)
            return
        self.deny(
            path,
            "host-path-volumes",
            f"hostPath {shown(normal)} mounts the host's files",
            f"--allow-host-path {normal}, or a directory above it, allows it",
        )

    # -- one container ----------------------------------------------------------------------
    def container(
        self, path: FieldPath, container: Mapping[str, Any], pod_context: Mapping[str, Any]
    ) -> None:
        context = as_map(container.get("securityContext"))
        sc: FieldPath = path + ("securityContext",)
        if self.baseline:
            if _truthy(context.get("privileged")):
                self.deny(
                    sc + ("privileged",),
                    "privileged",
                    "a privileged container has every capability and every device of the host",
                )
            added = as_list(as_map(context.get("capabilities")).get("add"))
            for index, capability in enumerate(added):
                name = _capability(capability)
                if name not in CAPABILITIES:
                    continue  # not a capability at all: check.security says so
                at = sc + ("capabilities", "add", index)
                if name not in BASELINE_CAPABILITIES:
                    why = f"capability {shown(capability)} is beyond Docker's default set"
                    self.deny(at, "capabilities", why)
                elif self.restricted and name != "NET_BIND_SERVICE":
                    why = f"capability {shown(capability)}: only NET_BIND_SERVICE may be added"
                    self.deny_restricted(at, "capabilities", why)
            self.profiles(context, ("securityContext",), path)
            if context.get("procMount") not in (None, "Default"):
                self.deny(
                    sc + ("procMount",),
                    "proc-mount",
                    "an unmasked /proc shows the host's kernel settings",
                )
            for pindex, port in enumerate(as_list(container.get("ports"))):
                host_port = as_map(port).get("hostPort")
                if isinstance(host_port, int) and host_port != 0:
                    self.deny(
                        path + ("ports", pindex, "hostPort"),
                        "host-ports",
                        f"hostPort {host_port} binds a port of the host",
                    )
        if self.restricted:
            self.restricted_container(path, context, pod_context)

    def profiles(self, context: Mapping[str, Any], at: FieldPath, prefix: FieldPath = ()) -> None:
        """AppArmor, seccomp and SELinux settings of a pod or container security context."""
        for field, rule in (("appArmorProfile", "apparmor"), ("seccompProfile", "seccomp")):
            kind = as_map(context.get(field)).get("type")
            if kind == "Unconfined":
                self.deny(
                    prefix + at + (field, "type"),
                    rule,
                    f"an unconfined {'AppArmor' if rule == 'apparmor' else 'seccomp'} profile "
                    "lifts the runtime's restrictions",
                )
        selinux = as_map(context.get("seLinuxOptions"))
        for field in ("user", "role"):
            if selinux.get(field):
                self.deny(
                    prefix + at + ("seLinuxOptions", field),
                    "selinux",
                    f"a custom SELinux {field} may run outside the container domain",
                )
        kind = selinux.get("type")
        if isinstance(kind, str) and kind not in SELINUX_TYPES:
            self.deny(
                prefix + at + ("seLinuxOptions", "type"),
                "selinux",
                f"SELinux type {shown(kind)} is not a container type",
            )

    # -- restricted only --------------------------------------------------------------------
    def restricted_container(
        self, path: FieldPath, context: Mapping[str, Any], pod_context: Mapping[str, Any]
    ) -> None:
        sc: FieldPath = path + ("securityContext",)
        if context.get("allowPrivilegeEscalation") is not False:
            self.deny_restricted(
                sc + ("allowPrivilegeEscalation",),
                "privilege-escalation",
                "allowPrivilegeEscalation must be false (setuid programs could gain root)",
            )
        drop = [_capability(c) for c in as_list(as_map(context.get("capabilities")).get("drop"))]
        if "ALL" not in drop:
            self.deny_restricted(
                sc + ("capabilities", "drop"),
                "capabilities",
                "capabilities.drop must hold ALL",
            )
        non_root = context.get("runAsNonRoot", pod_context.get("runAsNonRoot"))
        if non_root is not True:
            self.deny_restricted(
                sc + ("runAsNonRoot",),
                "running-as-non-root",
                "runAsNonRoot must be true, in the container or the pod's securityContext",
            )
        user = context.get("runAsUser", pod_context.get("runAsUser"))
        if user == 0:
            where = sc if "runAsUser" in context else ("securityContext",)
            self.deny_restricted(
                where + ("runAsUser",),
                "running-as-non-root-user",
                "runAsUser 0 is root",
            )
        seccomp = as_map(context.get("seccompProfile") or pod_context.get("seccompProfile"))
        if seccomp.get("type") != "RuntimeDefault":
            self.deny_restricted(
                sc + ("seccompProfile",),
                "seccomp",
                "seccompProfile.type must be RuntimeDefault, in the container or the pod",
            )


def _capability(value: Any) -> str:
    """A capability's name as Kubernetes writes it: ``NET_ADMIN`` (``CAP_`` and case aside)."""
    text = str(value).upper()
    return text[4:] if text.startswith("CAP_") else text


#: Where each kind keeps the pod spec the policy checks (a kind that runs pods adds its own).
POD_SPEC_PATHS: dict[str, FieldPath] = {
    "Pod": ("spec",),
    "ReplicationController": ("spec", "template", "spec"),
    "Deployment": ("spec", "template", "spec"),
}


def check_policy(report: Reporter, kind: str, body: Mapping[str, Any], policy: Policy) -> None:
    """The pod spec of one object (a Pod's spec, a controller's template) against
    ``policy``; each violation is an error at its field, naming the rule."""
    path = POD_SPEC_PATHS.get(kind)
    if path is None:
        return
    spec: Any = body
    for key in path:
        spec = as_map(spec).get(str(key))
    _Check(report, policy, path).pod(as_map(spec))


#: For reading manifests to show them (``reconciler get --source``), not to run them: every
#: rule off, every host path (engine sockets included) allowed.
OPEN_POLICY = Policy(Level.PRIVILEGED, ("/", *ENGINE_SOCKETS))
