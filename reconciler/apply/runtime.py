"""What applying, converging and the service need from a host, as protocols.

``engine.host.DockerHost`` implements them against a real engine; the unit tests implement
them in memory (``tests/unit/memory_runtime.py``), with the same translation of desired pods
into labelled containers (``engine.translate``), so that apply, converge, prune and rollout
passes run without Docker and without mocking its SDK.

Three sizes, so that each caller asks for no more than it uses:

- :class:`Runtime` — what executing a plan does to a host (``apply.execute``);
- :class:`HostRuntime` — plus observing it and closing the connection (``apply.converge``);
- :class:`ServiceRuntime` — plus the event stream and the revision marker (``daemon``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from reconciler.core.model import DesiredPod, HostState, LiveContainer, LiveVolume, Restart


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

    def wait_running(self, pod: DesiredPod, timeout: float = 30.0, settle: float = 0.5) -> None: ...


class HostRuntime(Runtime, Protocol):
    """A host a pass observes and changes. ``revision`` labels what it creates."""

    revision: str

    def observe(self, volumes: bool | None = None) -> HostState: ...

    def remove_volume(self, volume: LiveVolume) -> None: ...

    def close(self) -> None: ...


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
