"""What applying, converging and the service need from a host, as protocols.

``engine.host.DockerHost`` implements them against a real engine; the unit tests implement
them in memory (``tests/unit/memory_runtime.py``), with the same translation of desired pods
into labelled containers (``engine.translate``), so that apply, converge, prune and rollout
passes run without Docker and without mocking its SDK.

Three sizes, so that each caller asks for no more than it uses:

- :class:`Runtime` — what executing a plan does to a host (``apply.execute``);
- :class:`HostRuntime` — plus observing it, closing the connection, and the Deployments'
  rollout markers (``apply.converge``);
- :class:`ServiceRuntime` — plus the event stream and the revision marker (``daemon``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from reconciler.core.model import (
    DesiredPod,
    HostState,
    LiveContainer,
    LiveVolume,
    ObjectRef,
    Restart,
)


class Runtime(Protocol):
    """What applying needs from a host."""

    def create_pod(self, pod: DesiredPod) -> None: ...

    def create_container(self, pod: DesiredPod, name: str) -> None: ...

    def restart_container(
        self, pod: DesiredPod, name: str, live: Sequence[LiveContainer], restart: Restart
    ) -> None: ...

    def reload_forwarder(self, pod: DesiredPod, live: Sequence[LiveContainer]) -> None: ...

    def start(self, container: LiveContainer) -> None: ...

    def stop(self, container: LiveContainer) -> None: ...

    def remove(self, containers: Sequence[LiveContainer]) -> None: ...

    def remove_pod(self, containers: Sequence[LiveContainer]) -> None: ...

    def wait_ready(self, pod: DesiredPod, timeout: float = 30.0, settle: float = 0.5) -> None:
        """Block until ``pod`` is ready (``plan.live.pod_ready``) and still is after
        ``settle`` seconds; ``ApplyError`` after ``timeout``."""
        ...


class HostRuntime(Runtime, Protocol):
    """A host a pass observes and changes. ``revision`` labels what it creates."""

    revision: str

    def observe(self, volumes: bool | None = None) -> HostState: ...

    def remove_volume(self, volume: LiveVolume) -> None: ...

    def close(self) -> None: ...

    def record_rollout(
        self, deployment: ObjectRef, memory: str, generation: int, image: str
    ) -> None:
        """Write one generation of a Deployment's rollout memory (``plan.rollout_memory``)
        as a never-started marker, then drop the older generations on this host."""
        ...

    def forget_rollout(self, deployment: ObjectRef) -> None:
        """Remove every rollout marker of a Deployment that left the manifests."""
        ...

    def failure_details(self, containers: Sequence[LiveContainer]) -> dict[str, str]:
        """Per container id, what the host says of it beyond the list call: exit code,
        the last health probe's output, restarts. Only asked when a rollout fails."""
        ...


class EventStream(Protocol):
    """A blocking stream of Docker event dicts that another thread can close."""

    def __iter__(self) -> Iterator[dict[str, Any]]: ...

    def close(self) -> None: ...


class ServiceRuntime(HostRuntime, Protocol):
    """What the long-lived service needs besides a pass: events and the revision marker."""

    def container_events(self, actions: Sequence[str]) -> EventStream: ...

    def record_revision(self, revision: str, image: str) -> None: ...

    def engine_version(self) -> str:
        """The engine's version, for the status page (asked once per host, not per pass)."""
        ...
