"""Shared set-up of the integration tests: a real Docker engine, nothing mocked.

Every test gets a ``Rig``: its own ``--instance`` name (``it-<8 hex>``), its own copy of the
sample repository in ``tmp_path``, helpers that drive the CLI in process (click's CliRunner)
and helpers that read the real containers through the Docker SDK. A finalizer removes every
container and volume labelled with the rig's instance (and the foreign containers a test
registered with ``rig.track``); nothing else on the engine is ever touched.

No engine: the tests fail with a clear message (CI starts one with ``scripts/docker-up``),
unless ``RECONCILER_SKIP_DOCKER=1`` is set, then they are skipped.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import socket
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import docker
import docker.errors
import pytest
from click.testing import CliRunner, Result

from bench.scale_hosts import black_hole as full_accept_queue
from reconciler.cli import cli
from reconciler.core import labels as L
from reconciler.desire.settings import DEFAULT_INFRA_IMAGE, Settings
from reconciler.forwarder.build import default_forwarder_image

from .gitremotes import processes_under

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "sample-repo"
RECONCILER_BIN = REPO / ".venv" / "bin" / "reconciler"
SAMPLE_IMAGES = (
    "sample/db:1.0",
    "sample/keystone:1.0",
    "sample/memcached:1.0",
    "sample/frontend:1.0",
)

#: Roles of never-started bookkeeping containers: `run`'s revision marker, the records of
#: what each forwarder was given, the probe tools volume's helper.
BOOKKEEPING = (L.ROLE_STATE, L.ROLE_ENDPOINTS, L.ROLE_TOOLS)

#: The pods the sample repository runs, and the containers (by spec name) of each.
SAMPLE_PODS: dict[str, list[str]] = {
    "frontend-0": ["POD", "web"],
    "frontend-1": ["POD", "web"],
    "keystone-0": ["POD", "keystone", "memcached"],
    "keystone-1": ["POD", "keystone", "memcached"],
    "keystone-2": ["POD", "keystone", "memcached"],
    "keystone-db": ["POD", "keystone-db"],
}


def _subnets() -> Iterator[str]:
    """/20s of 10.200.0.0/13 (clear of the test hosts' 10.231.0.0/24), one per rig."""
    for n in itertools.count():
        yield f"10.{200 + (n // 16) % 30}.{(n % 16) * 16}.0/20"


_SUBNETS = _subnets()


def remove_stale_test_networks(api: docker.APIClient) -> None:
    """Networks of test instances (``it-*``) left by a crashed earlier run, with nothing
    attached: they would hold address pools that this run's rigs need."""
    for network in api.networks(filters={"label": f"{L.MANAGED_BY}={L.MANAGED_BY_VALUE}"}):
        instance = (network.get("Labels") or {}).get(L.INSTANCE, "")
        if not instance.startswith("it-"):
            continue
        with contextlib.suppress(docker.errors.APIError):
            if not api.inspect_network(network["Id"]).get("Containers"):
                api.remove_network(network["Id"])


def _instance_filter(instance: str) -> dict[str, Any]:
    return {"label": f"{L.INSTANCE}={instance}"}


def purge(api: docker.APIClient, instance: str) -> None:
    """Remove every container and volume labelled with ``instance`` (in parallel: fast)."""

    def remove(container_id: str) -> None:
        with contextlib.suppress(docker.errors.APIError):
            api.remove_container(container_id, force=True)

    for _ in range(3):
        found = api.containers(all=True, filters=_instance_filter(instance))
        if not found:
            break
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(remove, [item["Id"] for item in found]))
    volumes = api.volumes(filters=_instance_filter(instance)).get("Volumes") or []
    for volume in volumes:
        with contextlib.suppress(docker.errors.APIError):
            api.remove_volume(volume["Name"], force=True)
    for network in api.networks(filters=_instance_filter(instance)):
        with contextlib.suppress(docker.errors.APIError):
            api.remove_network(network["Id"])


def docker_time(text: str) -> float:
    """Docker's RFC 3339 timestamps carry nanoseconds; keep microseconds, return epoch."""
    stamp = text.rstrip("Z")
    if "." in stamp:
        whole, fraction = stamp.split(".", 1)
        stamp = f"{whole}.{fraction[:6].ljust(6, '0')}"
    return datetime.fromisoformat(stamp).replace(tzinfo=UTC).timestamp()


#: Ports handed out in this session: a port stays free until a test binds it, so two rigs
#: of one test must not be given the same one.
_GIVEN: set[int] = set()


def free_port(low: int = 20000, high: int = 29999) -> int:
    """A port in ``low``-``high`` that nothing uses, TCP or UDP, on any address, never the
    same twice in a session."""
    span = high - low + 1
    start = int(uuid4().hex[:4], 16) % span
    for offset in range(span):
        port = low + (start + offset) % span
        if port in _GIVEN:
            continue
        try:
            for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                with socket.socket(socket.AF_INET, kind) as probe:
                    probe.bind(("0.0.0.0", port))
        except OSError:
            continue
        _GIVEN.add(port)
        return port
    raise RuntimeError(f"no free port in {low}-{high}")


def free_node_port() -> int:
    """A free port in Kubernetes' nodePort range, as a NodePort Service needs."""
    return free_port(30000, 32767)


def fetch(url: str, timeout: float = 3.0) -> str:
    """One HTTP GET (only ever to 127.0.0.1 or a test host's 10.231.0.x address)."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return str(response.read().decode().strip())


def answers(url: str, tries: int = 30, wait: float = 0.0) -> set[str]:
    """The distinct bodies ``tries`` GETs returned: which backends a Service reached.

    ``wait``: seconds to wait for a first answer before counting (a forwarder just made
    publishes its port a moment after its container starts, longer on a busy machine)."""
    seen = set()
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            seen.add(fetch(url))
            break
        time.sleep(0.1)
    for _ in range(tries):
        with contextlib.suppress(OSError):
            seen.add(fetch(url))
    return seen


def changed_pods(before: dict[str, str], after: dict[str, str]) -> set[str]:
    """Pods (from ``Rig.ids()`` snapshots) any of whose containers are new, gone or other."""
    names = set(before) | set(after)
    return {name.split("_")[2] for name in names if before.get(name) != after.get(name)}


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, what: str = "") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what or predicate}")
        time.sleep(0.05)


class Rig:
    """One test's instance, manifests and views of the engine."""

    def __init__(self, client: docker.DockerClient, instance: str, root: Path) -> None:
        self.client = client
        self.api: docker.APIClient = client.api
        self.instance = instance
        self.root = root
        self.src = root / "manifests"
        #: per rig: its own host memory (hostmemory.py) and its own network subnet, so that
        #: rigs never share what they remember nor collide on Docker's address pools
        self.env = {
            "RECONCILER_STATE_DIR": str(root / "state"),
            "RECONCILER_CLUSTER_CIDR": next(_SUBNETS),
        }
        self.runner = CliRunner(env=self.env)
        self.tracked: list[str] = []
        #: the host ports of this rig's copy of the sample (``copy_sample``): free ones,
        #: never the sample's own, which a running ``scripts/run-sample`` holds: frontend's
        #: nodePort 30080, keystone-public's port 5000 and the nodePort that LoadBalancer
        #: is given (hashed from the Service's name: the same in every instance)
        self.node_port = 0
        self.lb_port = 0
        self.lb_node_port = 0

    # -- manifests ---------------------------------------------------------------------------
    def copy_sample(self) -> Path:
        """The sample repository, its published ports moved to free ones: the frontend's
        nodePort (``node_port``), keystone-public's LoadBalancer port (``lb_port``) and its
        nodePort (``lb_node_port``)."""
        if not self.src.exists():
            shutil.copytree(SAMPLE, self.src)
            self.node_port, self.lb_port = free_node_port(), free_port()
            self.lb_node_port = free_node_port()
            self.edit("frontend/service.yaml", "nodePort: 30080", f"nodePort: {self.node_port}")
            self.edit(
                "keystone/service.yaml",
                "- port: 5000\n",
                f"- port: {self.lb_port}\n      nodePort: {self.lb_node_port}\n",
            )
        return self.src

    def edit(self, relative: str, old: str, new: str) -> None:
        """Replace the single occurrence of ``old`` in a manifest of ``src``."""
        path = self.src / relative
        text = path.read_text()
        assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {path}"
        path.write_text(text.replace(old, new))

    def write(self, relative: str, text: str) -> Path:
        path = self.src / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def settings(self) -> Settings:
        """What the CLI computes with for this rig (its instance, image and subnet)."""
        return Settings(
            instance=self.instance,
            infra_image=os.environ.get("RECONCILER_INFRA_IMAGE", DEFAULT_INFRA_IMAGE),
            forwarder_image=os.environ.get("RECONCILER_FORWARDER_IMAGE")
            or default_forwarder_image(),
            cluster_cidr=self.env["RECONCILER_CLUSTER_CIDR"],
        )

    @property
    def process_env(self) -> dict[str, str]:
        """The environment for the installed command run as a process of its own."""
        return {**os.environ, **self.env}

    # -- the CLI, in process -----------------------------------------------------------------
    def cli(self, *args: Any, input: str | None = None) -> Result:
        result = self.runner.invoke(cli, [str(a) for a in args], input=input)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        assert "internal error" not in result.output, result.output
        return result

    def apply(self, *extra: Any, source: Path | None = None) -> Result:
        return self.cli(
            "apply",
            "--source",
            source or self.src,
            "--instance",
            self.instance,
            "--grace-period",
            "0",
            *extra,
        )

    def diff(self, *extra: Any, source: Path | None = None) -> Result:
        return self.cli("diff", "--source", source or self.src, "--instance", self.instance, *extra)

    def get(self, *args: Any) -> Result:
        return self.cli("get", *args, "--instance", self.instance)

    def down(self, *extra: Any) -> Result:
        return self.cli("down", "--instance", self.instance, "--grace-period", "0", *extra)

    def applied(self, *extra: Any) -> Result:
        """Apply and insist that it worked."""
        result = self.apply(*extra)
        assert result.exit_code == 0, result.output
        return result

    # -- the engine, through the SDK ---------------------------------------------------------
    def name(self, pod: str, container: str) -> str:
        return f"{self.instance}_default_{pod}_{container}"

    def containers(self, *labels: str, running_only: bool = False) -> list[dict[str, Any]]:
        """Containers owned by this instance (managed-by and instance labels), filtered more."""
        filters: dict[str, Any] = {"label": [*L.ownership_filters(self.instance), *labels]}
        if running_only:
            filters["status"] = "running"
        return list(self.api.containers(all=not running_only, filters=filters))

    def workload(self) -> list[dict[str, Any]]:
        """This instance's pods' containers: not Service forwarders nor `run`'s marker."""
        skip = (L.ROLE_FORWARDER, *BOOKKEEPING)  # forwarders; never-started records
        return [c for c in self.containers() if c["Labels"].get(L.ROLE) not in skip]

    def forwarders(self) -> dict[str, dict[str, Any]]:
        """Service name -> its forwarder container (one host)."""
        return {
            c["Labels"][L.OWNER_NAME]: c for c in self.containers(f"{L.ROLE}={L.ROLE_FORWARDER}")
        }

    def ids(self) -> dict[str, str]:
        """Docker name -> id of every workload container of this instance."""
        return {c["Names"][0].lstrip("/"): c["Id"] for c in self.workload()}

    def pods(self) -> dict[str, list[str]]:
        """Pod name -> sorted spec names of its containers (a duplicate shows twice)."""
        result: dict[str, list[str]] = {}
        for c in self.workload():
            labels = c["Labels"]
            result.setdefault(labels[L.POD], []).append(labels[L.CONTAINER])
        return {pod: sorted(names) for pod, names in sorted(result.items())}

    def states(self) -> dict[str, str]:
        """Docker name -> state of this instance's containers (records left out: they are
        never started)."""
        return {
            c["Names"][0].lstrip("/"): c["State"]
            for c in self.containers()
            if c["Labels"].get(L.ROLE) not in BOOKKEEPING
        }

    def services(self) -> set[str]:
        return set(self.forwarders())

    def volumes(self) -> list[str]:
        found = self.api.volumes(filters=_instance_filter(self.instance)).get("Volumes") or []
        return sorted(v["Name"] for v in found)

    def inspect(self, pod: str, container: str) -> dict[str, Any]:
        return dict(self.api.inspect_container(self.name(pod, container)))

    def exec(self, pod: str, container: str, command: Sequence[str]) -> str:
        box = self.client.containers.get(self.name(pod, container))
        code, output = box.exec_run(list(command))
        text = output.decode(errors="replace")
        assert code == 0, f"{command} in {pod}/{container} exited {code}: {text}"
        return str(text)

    def purge(self) -> None:
        """Remove everything of this rig's instance now (the fixture does it at the end)."""
        purge(self.api, self.instance)

    def track(self, container_id: str) -> None:
        """A container that is not ours but that this test made: removed at the end."""
        self.tracked.append(container_id)

    def assert_converged(self, pods: dict[str, list[str]] | None = None) -> None:
        """Exactly the expected containers, once each, all running; and diff says in sync."""
        expected = SAMPLE_PODS if pods is None else pods
        assert self.pods() == {p: sorted(c) for p, c in expected.items()}
        not_running = {n: s for n, s in self.states().items() if s != "running"}
        assert not not_running, not_running
        result = self.diff()
        assert result.exit_code == 0, result.output


# -- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    """The engine, and the sample images on it (made from busybox, no registry)."""
    if os.environ.get("RECONCILER_SKIP_DOCKER") == "1":
        pytest.skip("RECONCILER_SKIP_DOCKER=1: integration tests skipped")
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as exc:  # any failure to reach the engine is the same message
        pytest.fail(
            f"no Docker engine answers ({type(exc).__name__}: {exc}). Start one with "
            "scripts/docker-up, or set RECONCILER_SKIP_DOCKER=1 to skip the integration tests.",
            pytrace=False,
        )
    remove_stale_test_networks(client.api)
    missing = [image for image in SAMPLE_IMAGES if not _has_image(client, image)]
    if missing:
        result = CliRunner().invoke(cli, ["images", "busybox", *missing])
        assert result.exit_code == 0, f"could not create the sample images: {result.output}"
    yield client
    client.close()


def _has_image(client: docker.DockerClient, image: str) -> bool:
    try:
        client.api.inspect_image(image)
    except docker.errors.NotFound:
        return False
    return True


@pytest.fixture
def make_rig(docker_client: docker.DockerClient, tmp_path: Path) -> Iterator[Callable[[], Rig]]:
    """Rigs with fresh instance names; everything they own is purged at the end."""
    rigs: list[Rig] = []

    def make() -> Rig:
        instance = f"it-{uuid4().hex[:8]}"
        rig = Rig(docker_client, instance, tmp_path / instance)
        rig.root.mkdir()
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        for container_id in rig.tracked:
            with contextlib.suppress(docker.errors.APIError):
                docker_client.api.remove_container(container_id, force=True)
        purge(docker_client.api, rig.instance)


@pytest.fixture
def rig(make_rig: Callable[[], Rig]) -> Rig:
    """A rig with its own copy of the sample repository, nothing applied yet."""
    made = make_rig()
    made.copy_sample()
    return made


@pytest.fixture
def applied(rig: Rig) -> Rig:
    """A rig whose sample copy has been applied and runs."""
    result = rig.apply()
    assert result.exit_code == 0, result.output
    return rig


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A port that never answers a SYN: a listener whose accept queue is full (Linux drops
    the SYN then). Probed, not assumed: skips where the kernel answers anyway."""
    with full_accept_queue() as port:
        if port is None:
            pytest.skip("cannot make a black hole here: a full accept queue still answers SYNs")
        yield port


@pytest.fixture
def no_leftover_processes(tmp_path: Path) -> Iterator[None]:
    """The test must leave no process (git, a daemon, http-backend) behind in its directory:
    the git tests use it (``pytestmark``)."""
    yield
    deadline = time.monotonic() + 5
    while (left := processes_under(tmp_path)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not left, f"processes left behind: {left}"
