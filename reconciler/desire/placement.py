"""Where pods go: stay where you are if still eligible, else the least loaded host; what an
unreachable host keeps during its grace period; what cannot be placed. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from reconciler.core import labels as L
from reconciler.core.model import DesiredPod, Diagnostic, HostState, Manifest, Severity
from reconciler.desire.hostmemory import HostRecord, within_grace
from reconciler.desire.template import infra_ports
from reconciler.source.hosts import Host


class Placer:
    """Deterministic placement: stay where you are if still eligible, else least loaded.

    Eligible hosts match the pod's nodeSelector, are reachable, and have capacity left for
    its requests. Ties go to the host listed first, so equal inputs give equal outputs.
    """

    def __init__(
        self,
        hosts: Sequence[Host],
        live: Mapping[str, HostState],
        pinned: Mapping[tuple[str, str], str] | None = None,
    ) -> None:
        self.hosts = list(hosts)
        self.by_name = {h.name: h for h in self.hosts}
        self.live = live
        self.unreachable = {h.name for h in self.hosts if not self._reachable(h)}
        self.pinned = dict(pinned or {})  # pods held on an unreachable host
        self.load: dict[str, int] = {h.name: 0 for h in hosts}
        self.cpu: dict[str, int] = {h.name: 0 for h in hosts}
        self.memory: dict[str, int] = {h.name: 0 for h in hosts}
        self.current: dict[tuple[str, str], list[str]] = {}
        for state in live.values():
            for c in state.containers:
                if c.labels.get(L.ROLE) == L.ROLE_INFRA:
                    key = (c.labels.get(L.POD_NAMESPACE, ""), c.labels.get(L.POD, ""))
                    self.current.setdefault(key, []).append(state.host)

    def _reachable(self, host: Host) -> bool:
        state = self.live.get(host.name)
        return state is None or state.reachable

    def _fits(self, host: Host, node_selector: Mapping[str, str], cpu: int, memory: int) -> bool:
        if node_selector and any(host.labels.get(k) != v for k, v in node_selector.items()):
            return False
        if host.name in self.unreachable:
            return False
        if host.cpu_nano is not None and self.cpu[host.name] + cpu > host.cpu_nano:
            return False
        return host.memory_bytes is None or self.memory[host.name] + memory <= host.memory_bytes

    def any_reachable(self) -> bool:
        """Whether any host answered: when none did, placement says that, not capacity."""
        return any(self._reachable(h) for h in self.hosts)

    def eligible(self, node_selector: Mapping[str, str], cpu: int, memory: int) -> list[Host]:
        return [h for h in self.hosts if self._fits(h, node_selector, cpu, memory)]

    def place(
        self, key: tuple[str, str], node_selector: Mapping[str, str], cpu: int, memory: int
    ) -> str | None:
        chosen = self.pinned.get(key)
        if chosen is None:  # where it runs, if that host still fits (the first listed)
            chosen = next(
                (
                    name
                    for name in self.current.get(key, ())
                    if name in self.by_name
                    and self._fits(self.by_name[name], node_selector, cpu, memory)
                ),
                None,
            )
        if chosen is None:
            candidates = self.eligible(node_selector, cpu, memory)
            if not candidates:
                return None
            names = [h.name for h in candidates]
            chosen = min(names, key=lambda n: (self.load[n], names.index(n)))
        self.load[chosen] += 1
        self.cpu[chosen] += cpu
        self.memory[chosen] += memory
        return chosen


def held_pods(
    manifests: Sequence[Manifest],
    live: Mapping[str, HostState],
    memory: Mapping[str, HostRecord],
    now: float,
    grace: float,
) -> tuple[dict[tuple[str, str], str], dict[str, str]]:
    """Pods that stay placed on an unreachable host, and a note per such host.

    Within the grace period every pod it ran stays; after it, only bare Pods do (they are
    never moved), and the replicas of ReplicationControllers go to the other hosts.
    """
    bare = {(m.namespace, m.name) for m in manifests if m.kind == "Pod"}
    held: dict[tuple[str, str], str] = {}
    notes: dict[str, str] = {}
    for host, state in sorted(live.items()):
        record = memory.get(host)
        if state.reachable or record is None or record.down_since is None:
            continue
        away = max(0.0, now - record.down_since)
        if within_grace(record, now, grace):
            kept = list(record.pods)
            notes[host] = (
                f"down for {away:.0f}s; its {len(kept)} pod(s) stay placed there until the "
                f"host grace period ends in {grace - away:.0f}s"
            )
        else:
            kept = [key for key in record.pods if key in bare]
            moved = len(record.pods) - len(kept)
            notes[host] = (
                f"down for {away:.0f}s, past the host grace period ({grace:.0f}s): "
                f"{moved} replica(s) placed on other hosts"
                + (f"; bare pod(s) {', '.join(k[1] for k in kept)} wait for it" if kept else "")
            )
        for key in kept:
            held.setdefault(key, host)
    return held, notes


def unplaceable(
    manifest: Manifest,
    pod: str,
    node_selector: Mapping[str, str],
    spec_path: tuple[str | int, ...],
    any_reachable: bool = True,
) -> Diagnostic:
    wanted = ",".join(f"{k}={v}" for k, v in node_selector.items())
    why = (
        "no host is reachable (see the unreachable hosts above)"
        if not any_reachable
        else f"no reachable host matches nodeSelector {wanted} with capacity left"
        if wanted
        else ("no reachable host has capacity left for its requests")
    )
    return Diagnostic(
        Severity.ERROR,
        manifest.locate(spec_path),
        f"pod {pod} cannot be placed: {why}",
        kind=manifest.kind,
        name=manifest.name,
    )


def claims_apart(
    manifest: Manifest, pod: str, claims: list[str], spec_path: tuple[str | int, ...]
) -> Diagnostic:
    """A pod mounting claims whose volumes are on different hosts cannot run anywhere."""
    return Diagnostic(
        Severity.ERROR,
        manifest.locate(spec_path + ("volumes",)),
        f"pod {pod} cannot be placed: its claims {', '.join(claims)} have their volumes on "
        "different hosts (a claim's data stays on the host that holds it)",
        kind=manifest.kind,
        name=manifest.name,
    )


def pod_problem(manifest: Manifest, pod: str, problem: Any) -> Diagnostic:
    """A pod that cannot be made on its host (``desire.pods.PodProblem``)."""
    return Diagnostic(
        Severity.ERROR,
        manifest.locate(problem.path),
        f"pod {pod}: {problem}",
        kind=manifest.kind,
        name=manifest.name,
    )


def host_port_conflicts(pods: list[DesiredPod]) -> list[Diagnostic]:
    """Two pods on one host cannot publish the same hostPort (podman #15942's trap)."""
    used: dict[tuple[str, str, int, str], DesiredPod] = {}
    problems = []
    for pod in pods:
        for binding in infra_ports(pod):
            if not binding.host_port:
                continue  # a port Docker picks never conflicts
            key = (pod.host, binding.host_ip, binding.host_port, binding.protocol)
            other = used.get(key)
            if other is not None:
                problems.append(
                    Diagnostic(
                        Severity.ERROR,
                        pod.containers[0].source or pod.source,
                        f"pods {other.name} and {pod.name} both publish hostPort "
                        f"{binding.host_port}/{binding.protocol} on host {pod.host}: add hosts "
                        "or drop hostPort (replicas of one pod cannot share a host port)",
                        kind=pod.owner.kind,
                        name=pod.owner.name,
                    )
                )
            else:
                used[key] = pod
    return problems
