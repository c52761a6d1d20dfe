"""What a rollout needs of a Docker host, beside creating and removing pods: waiting for a
pod to be ready (what gates a ReplicationController's next replacement), the Deployments'
rollout markers (``plan.rollout_memory``), and what a failed rollout's containers say.

A mixin of ``engine.host.DockerHost`` (which supplies ``api``, ``_call``, ``instance`` and
``ensure_infra_image``), apart so that the host module stays the size of one idea.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from reconciler.core import labels as L
from reconciler.core.errors import ApplyError, NotFound
from reconciler.core.model import DesiredPod, LiveContainer, ObjectRef
from reconciler.engine import rollout_markers
from reconciler.engine import translate as T
from reconciler.plan.live import pod_ready

if TYPE_CHECKING:
    import docker

    from reconciler.source.hosts import Host


class RolloutSupport:
    """Readiness waits, rollout markers and failure details, on one engine."""

    if TYPE_CHECKING:
        host: Host
        instance: str

        @property
        def api(self) -> docker.APIClient: ...

        def _call(self, what: str, function: Any, *args: Any, **kwargs: Any) -> Any: ...

        def ensure_infra_image(self, image: str, with_forwarder: bool = False) -> None: ...

    def wait_ready(self, pod: DesiredPod, timeout: float = 30.0, settle: float = 0.5) -> None:
        """Block until ``pod`` is ready (``plan.live.pod_ready``, what gates a rollout) and
        still is after ``settle``: one list call per poll, filtered to the pod's labels."""
        deadline = time.monotonic() + timeout
        filters = {
            "label": [
                *L.ownership_filters(self.instance),
                f"{L.POD}={pod.name}",
                f"{L.POD_NAMESPACE}={pod.namespace}",
            ]
        }
        # init containers have completed (and may be gone) once create_pod returned
        wanted = {c.docker_name for c in pod.containers if c.role != L.ROLE_INIT}
        ready_since: float | None = None
        while True:
            listed = self._call("list pod", self.api.containers, all=True, filters=filters)
            found = [T.live_container(self.host.name, item) for item in listed or []]
            missing = wanted - {c.name for c in found}
            if missing:
                raise ApplyError(f"pod {pod.name}: {', '.join(sorted(missing))} disappeared")
            if pod_ready(found):
                ready_since = ready_since or time.monotonic()
                if time.monotonic() - ready_since >= settle:
                    return
            else:
                ready_since = None
            if time.monotonic() > deadline:
                bad = [
                    f"{c.name} {c.state} ({c.status})"
                    for c in found
                    if c.name in wanted and (not c.running or c.status.endswith("(unhealthy)"))
                ]
                raise ApplyError(
                    f"pod {pod.name} is not ready after {timeout:.0f}s"
                    + (f" ({', '.join(bad)})" if bad else "")
                )
            time.sleep(0.1)

    # -- rollout markers (plan.rollout_memory) ---------------------------------------------
    def record_rollout(
        self, deployment: ObjectRef, memory: str, generation: int, image: str
    ) -> None:
        """The next generation of a Deployment's rollout memory: created first, then the
        older generations removed, so that a reader never finds none."""
        name = rollout_markers.rollout_marker_name(self.instance, deployment, generation)
        labels = rollout_markers.rollout_marker_labels(
            self.instance, deployment, memory, generation
        )
        self.ensure_infra_image(image)
        filters = {"label": rollout_markers.rollout_marker_filters(self.instance, deployment)}
        before = self._call("list rollout markers", self.api.containers, all=True, filters=filters)
        for item in before or []:  # this generation, written before (by us or a peer)
            if item.get("Names") == [f"/{name}"] and L.is_owned(item.get("Labels"), self.instance):
                with contextlib.suppress(NotFound):
                    self._call(
                        "remove rollout marker", self.api.remove_container, item["Id"], force=True
                    )
        self._call(
            "record rollout",
            self.api.create_container,
            image,
            command=["true"],
            name=name,
            labels=labels,
            host_config=self.api.create_host_config(network_mode="none"),
        )
        for item in before or []:
            older = int((item.get("Labels") or {}).get(L.GENERATION, "0") or 0) < generation
            if older and L.is_owned(item.get("Labels"), self.instance):
                with contextlib.suppress(NotFound):
                    self._call(
                        "remove rollout marker", self.api.remove_container, item["Id"], force=True
                    )

    def forget_rollout(self, deployment: ObjectRef) -> None:
        filters = {"label": rollout_markers.rollout_marker_filters(self.instance, deployment)}
        found = self._call("list rollout markers", self.api.containers, all=True, filters=filters)
        for item in found or []:
            if L.is_owned(item.get("Labels"), self.instance):
                with contextlib.suppress(NotFound):
                    self._call(
                        "remove rollout marker", self.api.remove_container, item["Id"], force=True
                    )

    def failure_details(self, containers: Sequence[LiveContainer]) -> dict[str, str]:
        """What one inspect per container adds to the list call: the exit code, whether it
        was killed for memory, its restarts, and the last health probe's output."""
        details: dict[str, str] = {}
        for container in containers:
            try:
                info = self._call("inspect", self.api.inspect_container, container.id)
            except ApplyError:  # NotFound included: it went away meanwhile
                continue
            details[container.id] = container_details(info)
        return details


def container_details(info: Mapping[str, Any]) -> str:
    """What ``GET /containers/{id}/json`` says of a container that is not ready, in one
    line: its state, exit code, OOM kill, restarts, and the last health probe's output."""
    state = info.get("State") or {}
    name = ((info.get("Config") or {}).get("Labels") or {}).get(L.CONTAINER) or str(
        info.get("Name", "")
    ).lstrip("/")
    parts = [f"container {name} {state.get('Status', '?')}"]
    if state.get("Status") in ("exited", "restarting") or state.get("ExitCode"):
        parts.append(f"exit code {state.get('ExitCode', '?')}")
    if state.get("OOMKilled"):
        parts.append("killed: out of memory")
    if state.get("Error"):
        parts.append(str(state["Error"]))
    if info.get("RestartCount"):
        parts.append(f"restarted {info['RestartCount']} time(s)")
    health = state.get("Health") or {}
    log = health.get("Log") or []
    if health.get("Status"):
        last = log[-1] if log else {}
        output = " ".join(str(last.get("Output", "")).split())[:200]
        probe = f"health {health['Status']}"
        if last:
            probe += f", last probe exit code {last.get('ExitCode', '?')}"
        parts.append(probe + (f": {output}" if output else ""))
    return ", ".join(parts)
