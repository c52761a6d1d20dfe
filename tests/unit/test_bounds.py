"""Bounds on what a hostile commit can ask for: counts (int32, ``--max-pods``), pods created in
one pass (``--max-create``), and how much of a value a message quotes.

Through the real loader, validator, planner and service loop, on in-memory hosts
(``memory_runtime``); the CLI verbs stop before they reach a host. No Docker, no mocks.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.apply.converge import load_source, make_plan
from reconciler.check.validate import validate
from reconciler.cli import cli
from reconciler.core.text import QUOTE_LIMIT, TEXT_LIMIT, escape_control, shown
from reconciler.daemon.config import RunConfig
from reconciler.daemon.loop import ReconcileService
from reconciler.desire.budget import pod_budget
from reconciler.desire.settings import Settings
from reconciler.plan.guards import Limits, mass_create_hosts, refused
from reconciler.plan.model import Plan
from reconciler.render.diagnostics import diagnostic_line
from reconciler.source.hosts import Host
from reconciler.source.load import parse_text

from .memory_runtime import MemoryHost

RC = """\
apiVersion: v1
kind: ReplicationController
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{app: {name}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers: [{{name: app, image: "web:1"}}]
"""
HOSTS = [Host("h1", "tcp://10.231.0.11:2375", "10.231.0.11")]


def rc(name: str = "web", replicas: int | str = 2) -> str:
    return RC.format(name=name, replicas=replicas)


# -- counts ----------------------------------------------------------------------------------
def test_replicas_past_int32_are_an_error_at_their_line() -> None:
    result = validate(parse_text(rc(replicas=3_000_000_000), "rc.yaml"))
    assert [(d.location.line, d.path, d.message) for d in result.errors] == [
        (5, "spec.replicas", "must be 2147483647 or less (a Kubernetes int32); got 3000000000")
    ]
    assert validate(parse_text(rc(replicas=2**31 - 1), "rc.yaml")).valid


def test_more_pods_than_max_pods_is_refused_at_the_object_that_crosses_it() -> None:
    text = rc("a", 600) + "---\n" + rc("b", 600)
    manifests = validate(parse_text(text, "two.yaml")).manifests
    assert pod_budget(manifests, 1200) == []
    [over] = pod_budget(manifests, 1000)
    assert (over.location.line, over.path, over.name) == (16, "spec.replicas", "b")
    assert "the manifests ask for 1,200 pods in all, more than --max-pods 1,000" in over.message


@pytest.mark.parametrize("verb", ["diff", "apply"])
def test_diff_and_apply_refuse_a_tree_past_max_pods_before_any_host(
    verb: str, tmp_path: Path
) -> None:
    (tmp_path / "rc.yaml").write_text(rc(replicas=2_000_000_000))
    # the hosts file names an engine that does not exist: the verb must stop before it
    done = CliRunner().invoke(
        cli, [verb, "--source", str(tmp_path), "--hosts", "/nonexistent/hosts.yaml"]
    )
    assert done.exit_code == 2
    assert (
        "rc.yaml:5:3: error: ReplicationController/web: spec.replicas: the manifests ask "
        "for 2,000,000,000 pods in all, more than --max-pods 1,000" in done.output
    )
    assert "nothing applied" in done.output
    assert "hosts.yaml" not in done.output


def test_load_source_leaves_max_pods_to_the_caller(tmp_path: Path) -> None:
    (tmp_path / "rc.yaml").write_text(rc(replicas=5000))
    assert load_source([str(tmp_path)])[0].valid  # validate alone knows no instance
    assert not load_source([str(tmp_path)], max_pods=1000)[0].valid


# -- pods created in one pass ----------------------------------------------------------------
def _plan_for(text: str, hosts: list[Host]) -> Plan:
    manifests = validate(parse_text(text, "m.yaml")).manifests
    return make_plan(
        manifests, hosts, {h.name: MemoryHost(h.name).observe() for h in hosts}, Settings()
    )[1]


def test_creating_more_than_max_create_pods_on_a_host_needs_allow_mass_create() -> None:
    the_plan = _plan_for(rc(replicas=150), HOSTS)
    assert mass_create_hosts(the_plan, 100) == {
        "h1": "would create 150 pods on host h1, more than --max-create 100"
    }
    assert refused(the_plan, Limits()) == [
        "this plan would create 150 pods on host h1, more than --max-create 100 (pass "
        "--allow-mass-create if you mean it)"
    ]
    assert refused(the_plan, Limits(allow_mass_create=True)) == []
    assert refused(the_plan, Limits(max_create=150)) == []


def test_the_create_guard_counts_per_host() -> None:
    hosts = [*HOSTS, Host("h2", "tcp://10.231.0.12:2375", "10.231.0.12")]
    the_plan = _plan_for(rc(replicas=150), hosts)  # 75 on each host
    assert refused(the_plan, Limits()) == []


def test_the_service_refuses_a_mass_creation_and_creates_nothing(tmp_path: Path) -> None:
    source = tmp_path / "manifests"
    source.mkdir()
    (source / "web.yaml").write_text(rc(replicas=30))
    host = MemoryHost("h1", instance="svc", images=("web:1",))
    config = RunConfig(
        source=str(source),
        hosts=HOSTS,
        instance="svc",
        settings=Settings(instance="svc"),
        max_create=10,
    )
    loop = ReconcileService(config, runtimes={"h1": host})
    outcome = loop.run_pass("test")
    assert not outcome.ok
    assert "would create 30 pods on host h1, more than --max-create 10" in outcome.error
    assert host.running() == {}
    assert "--allow-mass-create" in loop.board.snapshot()["last_error"]["message"]


def test_the_service_holds_a_revision_past_max_pods(tmp_path: Path) -> None:
    source = tmp_path / "manifests"
    source.mkdir()
    (source / "web.yaml").write_text(rc(replicas=2))
    host = MemoryHost("h1", instance="svc", images=("web:1",))
    config = RunConfig(
        source=str(source), hosts=HOSTS, instance="svc", settings=Settings(instance="svc")
    )
    loop = ReconcileService(config, runtimes={"h1": host})
    assert loop.run_pass("first").applied == 2
    (source / "web.yaml").write_text(rc(replicas=3_000))
    outcome = loop.run_pass("a commit asking for 3,000 pods")
    assert outcome.ok and outcome.applied == 0  # the last valid revision stays in force
    assert len([n for n in host.running() if n.endswith("_app")]) == 2
    assert "more than --max-pods 1,000" in str(loop.board.snapshot()["last_error"])


# -- what a message quotes -------------------------------------------------------------------
def test_a_ten_megabyte_value_is_never_echoed_whole() -> None:
    huge = "a" * 10_000_000
    text = rc().replace("{labels: {app: web}}", f'{{labels: {{app: web, big: "{huge}"}}}}')
    result = validate(parse_text(text, "big.yaml"))
    assert result.errors
    for d in result.diagnostics:
        line = diagnostic_line(d)
        assert len(line) < 3 * TEXT_LIMIT, line[:200]
    assert "(10,000,000 characters)" in " ".join(d.message for d in result.errors)


def test_a_huge_key_or_name_is_cut_in_every_field_of_a_diagnostic() -> None:
    key = "k" * 1_000_000
    text = rc().replace("selector: {app: web}", f"selector: {{app: web, {key}: x}}")
    for d in validate(parse_text(text, "k.yaml")).diagnostics:
        assert len(d.message) <= TEXT_LIMIT + 40 and len(d.path) <= TEXT_LIMIT + 40


def test_shown_quotes_a_bounded_prefix_and_says_how_long() -> None:
    assert shown("short") == "'short'"
    long = shown("x" * 1000)
    assert long.startswith("'" + "x" * QUOTE_LIMIT + "'...")
    assert long.endswith("(1,000 characters)")
    assert shown(10**100).endswith("digits)")
    assert len(shown(["a" * 500] * 500)) <= QUOTE_LIMIT + 3


def test_escape_control_keeps_a_line_a_line() -> None:
    assert escape_control("plain text, C:\\path") == "plain text, C:\\path"
    assert escape_control("a\nINFO pass done") == "a\\nINFO pass done"
    assert escape_control("\x1b[31mred\x07") == "\\x1b[31mred\\x07"
    assert escape_control("rtl\u202eevil\u2028x") == "rtl\\u202eevil\\u2028x"
    assert escape_control("tab\\ and \t") == "tab\\\\ and \\t"


def test_base_60_numbers_are_bounded_before_pyyaml_reads_them() -> None:
    # PyYAML reads 1:2:3 by big-integer arithmetic in quadratic time: 100,000 parts took
    # seconds, a megabyte of them minutes
    value = "1:" * 500_000 + "1"
    result = parse_text(f"apiVersion: v1\nkind: Pod\nmetadata: {{name: {value}}}\n", "b.yaml")
    assert [d.message[-40:] for d in result.diagnostics] == [
        " cannot be read as int: it has too many digits"[-40:]
    ]
    assert parse_text("a: 1:30\n", "ok.yaml").manifests[0].body == {"a": 90}
