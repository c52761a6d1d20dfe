"""Plan tests as data: every ``tests/cases/*.yaml`` is one scenario (pyinfra-style).

A case gives the hosts file, the manifests, what each host runs, and the exact plan
expected. This harness turns the case into plain values (Host, Manifest, LiveContainer,
HostState), runs ``compute_desired`` and ``plan`` exactly as ``reconcile.make_plan`` does,
and compares. No mocks: the stages under test are pure functions of these values.

Case format (every key but ``hosts``, ``manifests`` and ``expect`` is optional)::

    description: one line saying what the case is about
    hosts:                       # the ``hosts:`` list of a hosts file, parsed by parse_hosts
      - {name: h1, url: "tcp://10.0.0.1:2375"}
    options: {prune: true, instance: default, infra_image: reconciler/pause:1}
    manifests: |                 # a multi-document YAML string, or a list of objects
      apiVersion: v1
      kind: Pod
      ...
    previous_manifests: ...      # what the running containers were created from
    live:                        # only configured hosts: observe() never sees any other
      h1:
        reachable: true          # false: the host could not be observed (``error``)
        pods:                    # shortcut: infra + every app container, all running
          - {pod: web, hash: desired}
        containers:              # one entry per Docker container
          - labels: {pod: ns/web, container: app, hash: stale}
            state: exited
            status: Exited (137) 3 seconds ago
    expect:                      # the plan's actions, in exact order
      - {host: h1, action: create, kind: Pod, name: web, pod: web, container: "",
         reason_contains: "...", group: "...", fields: [...], prune: false}
    expect_skipped_prunes: [...] # same shape as expect
    expect_problems: [substring, ...]          # one per problem, in order
    expect_unreachable: {h2: substring}
    expect_in_sync: true
    expect_placement: {web: h1, ns/fe-0: h2}   # every desired pod and its host
    expect_mass_prune: {max_prune: 10, hosts: {h1: substring}}

Label shortcuts for a live container (anything else under ``raw:`` is used verbatim):

- ``pod``: ``name`` or ``namespace/name``; ``container``: the spec name or ``POD``;
- ``role``: ``infra`` or ``app``, by default from the container name;
- ``owner``: ``Kind/name`` or ``Kind/namespace/name``, by default ``Pod/<the pod>``;
- ``hash``: ``desired`` (the spec hash the manifests give this pod now), ``previous`` (the
  one ``previous_manifests`` gave it) or any literal (``stale``);
- ``spec``: where the infra container's stored spec comes from: ``desired``, ``previous``
  or ``none``; by default the same as ``hash`` (a literal hash stores no spec);
- ``instance`` (default: the case's instance), ``managed_by`` (default: ``reconciler``,
  ``none`` drops the label), ``replica``, ``pod_labels`` (default: the labels of the pod
  ``hash``, else ``spec``, comes from; ``{}`` when both are literal/none).

The harness keeps only containers ``labels.is_owned`` accepts, as ``DockerHost.observe``
does with its label filter: ``plan`` itself is given owned containers only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.check.policy import Level, Policy
from reconciler.check.validate import validate
from reconciler.core import labels as L
from reconciler.core.model import DesiredPod, HostState, LiveContainer, Manifest
from reconciler.desire.compute import compute_desired
from reconciler.desire.settings import DesiredState, Settings, docker_name
from reconciler.plan.guards import mass_prune_hosts
from reconciler.plan.model import Action, Plan
from reconciler.plan.planner import plan
from reconciler.source.hosts import Host, parse_hosts
from reconciler.source.load import LoadResult, parse_text

CASES_DIR = Path(__file__).resolve().parents[1] / "cases"
CASE_FILES = sorted(CASES_DIR.glob("*.yaml"))

_CASE_KEYS = {
    "description",
    "hosts",
    "options",
    "manifests",
    "previous_manifests",
    "live",
    "expect",
    "expect_skipped_prunes",
    "expect_problems",
    "expect_unreachable",
    "expect_in_sync",
    "expect_placement",
    "expect_mass_prune",
}
_OPTION_KEYS = {"prune", "instance", "infra_image"}
_EXPECT_KEYS = {
    "host",
    "action",
    "kind",
    "name",
    "namespace",
    "pod",
    "container",
    "reason_contains",
    "group",
    "fields",
    "prune",
}
_CONTAINER_KEYS = {"id", "name", "labels", "state", "status", "image", "created", "exit_code"}
_LABEL_KEYS = {
    "pod",
    "container",
    "role",
    "owner",
    "hash",
    "spec",
    "instance",
    "managed_by",
    "replica",
    "pod_labels",
    "raw",
}
_DEFAULT_STATUS = {
    "running": "Up 5 minutes",
    "exited": "Exited (0) 1 minute ago",
    "created": "Created",
    "restarting": "Restarting (1) 2 seconds ago",
    "paused": "Up 5 minutes (Paused)",
    "dead": "Dead",
}
CREATED = 1_700_000_000


class CaseError(Exception):
    """The case file itself is wrong (not the code under test)."""


def _unknown(where: str, value: Mapping[str, Any], known: set[str]) -> None:
    extra = set(value) - known
    if extra:
        raise CaseError(f"{where}: unknown key(s) {sorted(extra)} (known: {sorted(known)})")


def _split_ns(text: str) -> tuple[str, str]:
    namespace, _, name = text.rpartition("/")
    return (namespace or "default", name)


def load_manifests(value: Any, label: str) -> list[Manifest]:
    """Manifests from a multi-document string or a list of objects; they must be valid."""
    if value is None:
        return []
    text = value if isinstance(value, str) else yaml.safe_dump_all(value, sort_keys=False)
    loaded = parse_text(text, label)
    # the cases test planning, not the operator's policy (test_policy.py): hostPorts allowed
    loaded_result = LoadResult(loaded.manifests, loaded.diagnostics, loaded.files)
    result = validate(loaded_result, Policy(Level.PRIVILEGED))
    if result.errors:
        raise CaseError(
            f"{label}: invalid manifests: "
            + "; ".join(f"{d.location}: {d.message}" for d in result.errors)
        )
    return result.manifests


def _unconstrained(hosts: list[Host]) -> list[Host]:
    return [dataclasses.replace(h, cpu_nano=None, memory_bytes=None) for h in hosts]


def _reference(
    manifests: list[Manifest], hosts: list[Host], settings: Settings
) -> dict[tuple[str, str], DesiredPod]:
    """Each pod the manifests give, by key: spec hashes do not depend on placement."""
    state = compute_desired(manifests, _unconstrained(hosts), {}, settings)
    return {p.key: p for p in state.pods}


@dataclasses.dataclass
class Case:
    name: str
    data: dict[str, Any]
    hosts: list[Host]
    settings: Settings
    prune: bool
    manifests: list[Manifest]
    live: dict[str, HostState]


class _Sources:
    """Resolves ``desired`` / ``previous`` to the pod those manifests give for a key."""

    def __init__(self, desired: dict[Any, DesiredPod], previous: dict[Any, DesiredPod]) -> None:
        self.by_source = {"desired": desired, "previous": previous}

    def pod(self, source: str, key: tuple[str, str], where: str) -> DesiredPod:
        pods = self.by_source[source]
        if key not in pods:
            raise CaseError(
                f"{where}: hash/spec {source!r}: the {source} manifests give no pod "
                f"{key[0]}/{key[1]} (use a literal hash)"
            )
        return pods[key]


def _container(
    host: str, entry: Mapping[str, Any], where: str, settings: Settings, sources: _Sources
) -> LiveContainer:
    _unknown(where, entry, _CONTAINER_KEYS)
    short = dict(entry.get("labels") or {})
    _unknown(f"{where}.labels", short, _LABEL_KEYS)
    if "pod" not in short or "container" not in short:
        raise CaseError(f"{where}: labels need at least pod and container")
    namespace, pod = _split_ns(str(short["pod"]))
    container = str(short["container"])
    role = short.get("role") or (L.ROLE_INFRA if container == L.INFRA_CONTAINER else L.ROLE_APP)
    owner = str(short.get("owner") or f"Pod/{namespace}/{pod}")
    owner_kind, _, rest = owner.partition("/")
    owner_ns, owner_name = _split_ns(rest)
    instance = str(short.get("instance", settings.instance))
    hash_from = str(short.get("hash", "desired"))
    spec_from = str(
        short.get("spec", hash_from if hash_from in ("desired", "previous") else "none")
    )
    source_pod: DesiredPod | None = None
    labels: dict[str, str] = {
        L.INSTANCE: instance,
        L.OWNER_KIND: owner_kind,
        L.OWNER_NAMESPACE: owner_ns,
        L.OWNER_NAME: owner_name,
        L.POD: pod,
        L.POD_NAMESPACE: namespace,
        L.CONTAINER: container,
        L.ROLE: role,
    }
    managed_by = short.get("managed_by", L.MANAGED_BY_VALUE)
    if managed_by != "none":
        labels[L.MANAGED_BY] = str(managed_by)
    if hash_from in ("desired", "previous"):
        source_pod = sources.pod(hash_from, (namespace, pod), where)
        labels[L.SPEC_HASH] = source_pod.spec_hash
    else:
        labels[L.SPEC_HASH] = hash_from
    if spec_from != "none":
        spec_pod = sources.pod(spec_from, (namespace, pod), where)
        source_pod = source_pod or spec_pod
        if role == L.ROLE_INFRA:
            labels[L.SPEC] = L.canonical_json({"spec": spec_pod.spec})
    pod_labels = short.get("pod_labels")
    if pod_labels is None and source_pod is not None:
        pod_labels = dict(source_pod.labels)
    labels[L.POD_LABELS] = L.canonical_json(pod_labels or {})
    if "replica" in short:
        labels[L.REPLICA] = str(short["replica"])
    labels.update({str(k): str(v) for k, v in (short.get("raw") or {}).items()})
    image = entry.get("image")
    if image is None:
        image = settings.infra_image
        if source_pod is not None and role == L.ROLE_APP:
            image = next(
                (c.image for c in source_pod.containers if c.container == container), "unknown"
            )
    state = str(entry.get("state", "running"))
    name = str(entry.get("name") or docker_name(instance, namespace, pod, container))
    return LiveContainer(
        id=str(entry.get("id") or f"{host}/{name}"),
        name=name,
        host=host,
        labels=labels,
        state=state,
        status=str(entry.get("status") or _DEFAULT_STATUS.get(state, state)),
        created=int(entry.get("created", CREATED)),
        image=str(image),
        exit_code=entry.get("exit_code"),
    )


def _pod_containers(
    host: str, entry: Mapping[str, Any], where: str, settings: Settings, sources: _Sources
) -> list[LiveContainer]:
    """The ``pods:`` shortcut: an infra container and every app container, all running."""
    _unknown(where, entry, {"pod", "owner", "hash", "replica", "containers"})
    namespace, pod = _split_ns(str(entry["pod"]))
    hash_from = str(entry.get("hash", "desired"))
    names = entry.get("containers")
    if names is None:
        if hash_from not in ("desired", "previous"):
            raise CaseError(f"{where}: a literal hash needs an explicit containers list")
        source = sources.pod(hash_from, (namespace, pod), where)
        names = [c.container for c in source.app_containers]
    common = {k: entry[k] for k in ("owner", "hash", "replica") if k in entry}
    return [
        _container(
            host,
            {"labels": {"pod": f"{namespace}/{pod}", "container": name, **common}},
            f"{where}.{name}",
            settings,
            sources,
        )
        for name in [L.INFRA_CONTAINER, *names]
    ]


def build_case(path: Path) -> Case:
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise CaseError(f"{path.name}: a case is a mapping")
    _unknown(path.name, data, _CASE_KEYS)
    if "expect" not in data:
        raise CaseError(f"{path.name}: every case says what it expects (expect: [] for none)")
    options = dict(data.get("options") or {})
    _unknown(f"{path.name}: options", options, _OPTION_KEYS)
    settings = Settings(
        instance=str(options.get("instance", L.DEFAULT_INSTANCE)),
        infra_image=str(options.get("infra_image", Settings().infra_image)),
    )
    hosts = parse_hosts(yaml.safe_dump({"hosts": data["hosts"]}).encode(), f"{path.name}:hosts")
    manifests = load_manifests(data.get("manifests"), f"{path.name}:manifests")
    previous = load_manifests(data.get("previous_manifests"), f"{path.name}:previous_manifests")
    sources = _Sources(
        _reference(manifests, hosts, settings), _reference(previous, hosts, settings)
    )
    configured = [h.name for h in hosts]
    raw_live = dict(data.get("live") or {})
    for host in raw_live:
        if host not in configured:
            raise CaseError(
                f"{path.name}: live state for {host!r}, which is not in hosts: observe() only "
                "ever sees configured hosts"
            )
    live: dict[str, HostState] = {}
    for host in configured:
        entry = dict(raw_live.get(host) or {})
        _unknown(f"{path.name}: live.{host}", entry, {"reachable", "error", "pods", "containers"})
        containers: list[LiveContainer] = []
        for index, pod in enumerate(entry.get("pods") or []):
            where = f"{path.name}: live.{host}.pods[{index}]"
            containers += _pod_containers(host, pod, where, settings, sources)
        for index, c in enumerate(entry.get("containers") or []):
            where = f"{path.name}: live.{host}.containers[{index}]"
            containers.append(_container(host, c, where, settings, sources))
        reachable = bool(entry.get("reachable", True))
        if not reachable and containers:
            raise CaseError(f"{path.name}: unreachable host {host} cannot list containers")
        # What DockerHost.observe keeps: only this instance's objects.
        owned = tuple(c for c in containers if L.is_owned(dict(c.labels), settings.instance))
        live[host] = HostState(host, reachable, owned, error=str(entry.get("error", "")))
    return Case(
        name=path.stem,
        data=data,
        hosts=hosts,
        settings=settings,
        prune=bool(options.get("prune", True)),
        manifests=manifests,
        live=live,
    )


def run(case: Case, *, reverse: bool = False) -> tuple[DesiredState, Plan]:
    """compute_desired + plan, as reconcile.make_plan wires them."""
    manifests = list(reversed(case.manifests)) if reverse else case.manifests
    live = case.live
    if reverse:
        live = {
            host: dataclasses.replace(state, containers=tuple(reversed(state.containers)))
            for host, state in live.items()
        }
    desired = compute_desired(manifests, case.hosts, live, case.settings)
    return desired, plan(desired, live, prune=case.prune)


def _check_actions(actions: list[Action], expected: list[dict[str, Any]], what: str) -> None:
    got = [f"{a.host} {a.verb.value} {a.namespace}/{a.pod} {a.container!r}" for a in actions]
    want = [
        f"{e['host']} {e['action']} {e.get('namespace', 'default')}/{e['pod']} "
        f"{str(e.get('container', ''))!r}"
        for e in expected
    ]
    assert got == want, f"{what}: actions differ\n got: {got}\nwant: {want}"
    for index, (action, entry) in enumerate(zip(actions, expected, strict=True)):
        _unknown(f"{what}[{index}]", entry, _EXPECT_KEYS)
        at = f"{what}[{index}] ({action.verb.value} {action.pod})"
        if "kind" in entry:
            assert action.owner.kind == entry["kind"], at
        if "name" in entry:
            assert action.owner.name == entry["name"], at
        if "reason_contains" in entry:
            assert entry["reason_contains"] in action.reason, f"{at}: reason {action.reason!r}"
        if "group" in entry:
            assert action.group == entry["group"], at
        if "fields" in entry:
            assert [c.path for c in action.changes] == entry["fields"], (
                f"{at}: {[c.path for c in action.changes]}"
            )
        if "prune" in entry:
            assert action.prune is entry["prune"], at


def check_case(case: Case, data: Mapping[str, Any]) -> None:
    """Compare the plan for ``case`` with the expectations in ``data``."""
    desired, result = run(case)

    _check_actions(result.actions, data["expect"] or [], "expect")
    _check_actions(result.skipped_prunes, data.get("expect_skipped_prunes") or [], "skipped")

    problems = [d.message for d in result.problems]
    wanted_problems = data.get("expect_problems") or []
    assert len(problems) == len(wanted_problems), problems
    for message, fragment in zip(problems, wanted_problems, strict=True):
        assert fragment in message, problems

    unreachable = data.get("expect_unreachable") or {}
    assert sorted(result.unreachable) == sorted(unreachable)
    for host, fragment in unreachable.items():
        assert fragment in result.unreachable[host]

    if "expect_in_sync" in data:
        assert result.in_sync is data["expect_in_sync"]
    else:  # a case that expects no actions, problems or unreachable hosts must say so
        assert not result.in_sync, "in sync: say expect_in_sync: true"

    if "expect_placement" in data:
        placement = {
            (p.name if p.namespace == "default" else f"{p.namespace}/{p.name}"): p.host
            for p in desired.pods
        }
        assert placement == data["expect_placement"]

    if "expect_mass_prune" in data:
        spec = data["expect_mass_prune"]
        refused = mass_prune_hosts(result, int(spec["max_prune"]))
        assert sorted(refused) == sorted(spec.get("hosts") or {}), refused
        for host, fragment in (spec.get("hosts") or {}).items():
            assert fragment in refused[host]

    # Stable: the same inputs in another order give exactly the same plan.
    _, again = run(case, reverse=True)
    assert [a.as_dict() for a in again.actions] == [a.as_dict() for a in result.actions]
    assert [a.group for a in again.actions] == [a.group for a in result.actions]


@pytest.mark.parametrize("path", CASE_FILES, ids=[p.stem for p in CASE_FILES])
def test_plan_case(path: Path) -> None:
    case = build_case(path)
    check_case(case, case.data)


def _mutations(data: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Altered expectations that must no longer pass."""
    expect = list(data["expect"] or [])
    bogus = {"host": "h1", "action": "create", "pod": "nothing-like-this"}
    result = [("one more action", {**data, "expect": [*expect, bogus]})]
    if expect:
        result.append(("one action less", {**data, "expect": expect[:-1]}))
        result.append(("actions reversed", {**data, "expect": expect[::-1]}))
    if "expect_in_sync" in data:
        result.append(("in sync flipped", {**data, "expect_in_sync": not data["expect_in_sync"]}))
    if data.get("expect_problems"):
        result.append(("problems dropped", {**data, "expect_problems": []}))
    if data.get("expect_placement"):
        placement = dict(data["expect_placement"])
        first = next(iter(placement))
        placement[first] = "elsewhere"
        result.append(("placement moved", {**data, "expect_placement": placement}))
    return [(why, m) for why, m in result if m != data]


@pytest.mark.parametrize("path", CASE_FILES, ids=[p.stem for p in CASE_FILES])
def test_plan_case_can_fail(path: Path) -> None:
    """Every case detects a plan that differs from its expectation."""
    case = build_case(path)
    for why, data in _mutations(case.data):
        with pytest.raises(AssertionError):
            check_case(case, data)
            pytest.fail(f"{why}: still passes")


def test_there_are_enough_cases() -> None:
    assert len(CASE_FILES) >= 20


def test_a_wrong_expectation_fails() -> None:
    """The harness itself can fail: a case with one action altered no longer passes."""
    case = build_case(CASES_DIR / "empty_host_creates.yaml")
    _, result = run(case)
    expected = [dict(e) for e in case.data["expect"]]
    expected[0]["action"] = "start"
    with pytest.raises(AssertionError):
        _check_actions(result.actions, expected, "expect")
    expected = [dict(e) for e in case.data["expect"]]
    expected[0]["reason_contains"] = "no such reason"
    with pytest.raises(AssertionError):
        _check_actions(result.actions, expected, "expect")


def test_case_errors_are_reported() -> None:
    with pytest.raises(CaseError, match="unknown key"):
        _unknown("case", {"expcet": []}, _CASE_KEYS)
    with pytest.raises(CaseError, match="invalid manifests"):
        load_manifests("apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n", "bad")
