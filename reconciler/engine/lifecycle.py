"""Making and remaking a pod's containers on one engine: the pod with its init containers
run one after the other, each waited for; a container missing from a running pod; a
failed container restarted with its count and back-off in its labels; a container stopped
for good; a forwarder reloaded.

``DockerHost`` (``engine.host``) is made of this and of the calls it builds on, which it
defines: creating one container from its arguments, the pod's files and address, the
infra container's id, removing containers. Apart so that neither module outgrows itself.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from reconciler.core import labels as L
from reconciler.core.errors import InitError
from reconciler.core.model import DesiredContainer, DesiredPod, LiveContainer, Restart
from reconciler.engine import probes as P
from reconciler.engine import translate as T
from reconciler.engine.probetools import HostProbeTools
from reconciler.engine.reload import ForwarderReload
from reconciler.engine.resources import HostImages

if TYPE_CHECKING:
    import docker

#: Seconds ``create_pod`` waits for each init container to complete before it leaves the pod
#: initializing (a later pass, woken by the container's exit, carries on).
INIT_WAIT = 30.0


class PodLifecycle:
    """The pod-making half of ``DockerHost``; the names declared here are the other half's."""

    instance: str
    revision: str
    grace_seconds: int
    images: HostImages
    probe_tools: HostProbeTools
    forwarder_records: ForwarderReload

    @property
    def api(self) -> docker.APIClient:
        raise NotImplementedError

    def _call(self, what: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def _create(self, args: T.ContainerArgs, start: bool = True) -> str:
        raise NotImplementedError

    def _create_volumes(self, pod: DesiredPod) -> None:
        raise NotImplementedError

    def _create_infra(self, pod: DesiredPod) -> str:
        raise NotImplementedError

    def _create_app(
        self, pod: DesiredPod, container: DesiredContainer, infra_id: str, pod_ip: str = ""
    ) -> str:
        raise NotImplementedError

    def _fill_files(self, pod: DesiredPod, infra_id: str) -> None:
        raise NotImplementedError

    def _pod_ip(self, pod: DesiredPod, infra_id: str) -> str:
        raise NotImplementedError

    def _infra_id(self, pod: DesiredPod) -> str:
        raise NotImplementedError

    def _check_non_root(self, container: DesiredContainer) -> None:
        raise NotImplementedError

    def ensure_infra_image(self, image: str, with_forwarder: bool = False) -> None:
        raise NotImplementedError

    def _discard(self, container_ids: Sequence[str], pod: DesiredPod) -> None:
        raise NotImplementedError

    def remove(self, containers: Sequence[LiveContainer]) -> None:
        raise NotImplementedError

    def create_pod(self, pod: DesiredPod) -> None:
        """Volumes, infra container, its files, the init containers one after the other,
        each to completion, then every app container; all or nothing, but for init
        containers: one that fails leaves the pod as it is (``InitError``, status
        ``Init:Error``) and one still running after ``INIT_WAIT`` leaves it initializing, for
        later passes."""
        for container in pod.containers[1:]:
            self.images.ensure(container.image, container.pull_policy, container.pull_auth)
            self._check_non_root(container)
        infra = pod.containers[0]
        self.ensure_infra_image(infra.image, with_forwarder=infra.role == L.ROLE_FORWARDER)
        if P.needs_tools(pod):
            self.probe_tools.ensure()
        created: list[str] = []
        try:
            self._create_volumes(pod)
            infra_id = self._create_infra(pod)
            created.append(infra_id)
            self._fill_files(pod, infra_id)
            pod_ip = self._pod_ip(pod, infra_id)
            for container in pod.init_containers:
                created.append(self._create_app(pod, container, infra_id, pod_ip))
                if not self._completed(container, INIT_WAIT):
                    return  # still running, or failed: the pod stays (InitError said which)
            for container in pod.app_containers:
                created.append(self._create_app(pod, container, infra_id, pod_ip))
        except InitError:
            raise
        except Exception:
            self._discard(created, pod)  # no half-made pod stays behind
            raise

    def _completed(self, container: DesiredContainer, timeout: float) -> bool:
        """Wait for an init container to exit: True when it exited 0, False when it still
        runs after ``timeout``; ``InitError`` when it failed."""
        deadline = time.monotonic() + timeout
        while True:
            info = self._call("inspect", self.api.inspect_container, container.docker_name)
            state = info.get("State") or {}
            if state.get("Status") in ("exited", "dead"):
                code = int(state.get("ExitCode", 0))
                if code == 0:
                    return True
                raise InitError(f"init container {container.container} exited {code}")
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)

    def create_container(self, pod: DesiredPod, name: str) -> None:
        """A container missing from a running pod; an init container is waited for."""
        container = next(c for c in pod.containers[1:] if c.container == name)
        self.images.ensure(container.image, container.pull_policy, container.pull_auth)
        self._check_non_root(container)
        if P.needs_tools(pod):
            self.probe_tools.ensure()
        infra_id = self._infra_id(pod)
        self._create_app(pod, container, infra_id, self._pod_ip(pod, infra_id))
        if container.role == L.ROLE_INIT:
            self._completed(container, INIT_WAIT)

    def restart_container(
        self, pod: DesiredPod, name: str, live: Sequence[LiveContainer], restart: Restart
    ) -> None:
        """Replace a failed container by a new instance carrying ``restart`` in its labels;
        started now, or left created until ``restart.start_after`` (a later pass starts it:
        Kubernetes' CrashLoopBackOff, kept on the host where any reconciler sees it)."""
        container = next(c for c in pod.containers[1:] if c.container == name)
        self.images.ensure(container.image, container.pull_policy, container.pull_auth)
        infra_id = self._infra_id(pod)
        self.remove(live)
        pod_ip = self._pod_ip(pod, infra_id)
        args = T.app_args(
            pod, container, infra_id, self.instance, self.revision, pod_ip, restart=restart
        )
        self._create(args, start=restart.start_after <= time.time())

    def stop(self, container: LiveContainer) -> None:
        """Stop a container and leave it stopped (restartPolicy Never after a failed probe)."""
        self._call(
            f"stop {container.name}", self.api.stop, container.id, timeout=self.grace_seconds
        )

    def reload_forwarder(self, pod: DesiredPod, live: Sequence[LiveContainer]) -> None:
        """New endpoints for a running forwarder, without restarting it (engine.reload)."""
        self.forwarder_records.reload(pod, live, self.revision)
