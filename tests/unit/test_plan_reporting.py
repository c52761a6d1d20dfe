"""Plans rendered as JSON, text and Markdown: shape, grouping, field detail, secret masking.

Plans here come from the real pipeline (compute_desired + plan) over LiveContainer values
labelled the way the engine labels what it creates (engine.translate); nothing is mocked.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from reconciler.core.model import Diagnostic, HostState, LiveContainer, Location, Severity
from reconciler.core.redact import MASK, is_secret_name, mask_env, secret_marker
from reconciler.desire.compute import compute_desired
from reconciler.desire.settings import Settings
from reconciler.engine.translate import container_labels
from reconciler.plan.model import Plan
from reconciler.plan.planner import plan
from reconciler.render.plans import plan_json, plan_markdown, plan_text_lines, summary_text
from reconciler.source.hosts import Host
from reconciler.source.load import parse_text

H1 = Host("h1", "tcp://10.0.0.1:2375", "10.0.0.1")
H2 = Host("h2", "tcp://10.0.0.2:2375", "10.0.0.2")
REVISION = "0123abcd"

SECRETS_BEFORE = {
    "DB_PASSWORD": "old-pw-1234",
    "API_TOKEN": "old-token-5678",
    "client_secret": "old-secret-9012",
    "SSH_KEY": "old-key-3456",
}
SECRETS_AFTER = {
    "DB_PASSWORD": "new-pw-1234",
    "API_TOKEN": "new-token-5678",
    "client_secret": "new-secret-9012",
    "SSH_KEY": "new-key-3456",
}


def web(image: str, env: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web"},
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": image,
                    "env": [{"name": k, "value": v} for k, v in env.items()],
                }
            ]
        },
    }


def rc(name: str, namespace: str = "default") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": 1,
            "selector": {"app": name},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "w", "image": "example/w:1"}]},
            },
        },
    }


def state_of(*objects: dict[str, Any], hosts: list[Host]) -> Any:
    text = "\n---\n".join(yaml.safe_dump(o) for o in objects)
    loaded = parse_text(text, "app/web.yaml")
    assert loaded.diagnostics == []
    return compute_desired(loaded.manifests, hosts, {}, Settings())


def running(*objects: dict[str, Any], host: Host = H1) -> list[LiveContainer]:
    """Containers as the engine would have created them from these manifests."""
    result = []
    for pod in state_of(*objects, hosts=[host]).pods:
        for c in pod.containers:
            result.append(
                LiveContainer(
                    id=f"{host.name}-{c.docker_name}",
                    name=c.docker_name,
                    host=host.name,
                    labels=container_labels(pod, c, "default", "old"),
                    state="running",
                    status="Up 1 hour",
                    created=1_700_000_000,
                    image=c.image,
                )
            )
    return result


def scenario() -> Plan:
    """h1: web recreated (image, MODE and secrets changed), api created; h2: old-0 pruned."""
    before = web("example/web:1.0", {"MODE": "blue-mode", **SECRETS_BEFORE})
    after = web("example/web:1.1", {"MODE": "green-mode", **SECRETS_AFTER})
    loaded = parse_text(
        "\n---\n".join(yaml.safe_dump(o) for o in (after, rc("api", "shop"))), "app/web.yaml"
    )
    live = {
        "h1": HostState("h1", True, tuple(running(before))),
        "h2": HostState("h2", True, tuple(running(rc("old"), host=H2))),
    }
    hosts = [H1, H2]
    desired = compute_desired(loaded.manifests, hosts, live, Settings())
    return plan(desired, live)


def test_scenario_is_what_the_tests_below_assume() -> None:
    result = scenario()
    assert [(a.host, a.verb.value, a.pod) for a in result.actions] == [
        ("h1", "recreate", "web"),
        ("h2", "create", "api-0"),
        ("h2", "remove", "old-0"),
    ]
    assert [c.path for c in result.actions[0].changes] == [
        "containers[app].env.API_TOKEN",
        "containers[app].env.DB_PASSWORD",
        "containers[app].env.MODE",
        "containers[app].env.SSH_KEY",
        "containers[app].env.client_secret",
        "containers[app].image",
    ]


# -- JSON -----------------------------------------------------------------------------------
def test_json_shape() -> None:
    document = json.loads(plan_json(scenario(), REVISION))
    assert {"revision", "in_sync", "changes", "summary"} <= set(document)
    assert document["revision"] == REVISION
    assert document["in_sync"] is False
    assert document["summary"] == {"recreate": 1, "create": 1, "remove": 1}
    base = ["host", "action", "kind", "namespace", "name", "pod", "container", "reason"]
    for change in document["changes"]:
        assert list(change)[: len(base)] == base
        assert set(change) - set(base) <= {"fields", "source"}
    recreate, create, remove = document["changes"]
    assert {k: recreate[k] for k in base} == {
        "host": "h1",
        "action": "recreate",
        "kind": "Pod",
        "namespace": "default",
        "name": "web",
        "pod": "web",
        "container": "",
        "reason": "spec changed: containers[app].env.API_TOKEN, containers[app].env.DB_PASSWORD, "
        "containers[app].env.MODE, containers[app].env.SSH_KEY ...",
    }
    assert recreate["source"] == "app/web.yaml:1:1"
    assert {
        "path": "containers[app].image",
        "old": "example/web:1.0",
        "new": "example/web:1.1",
    } in (recreate["fields"])
    assert {k: create[k] for k in ("host", "action", "kind", "namespace", "name", "pod")} == {
        "host": "h2",
        "action": "create",
        "kind": "ReplicationController",
        "namespace": "shop",
        "name": "api",
        "pod": "api-0",
    }
    assert "fields" not in create
    assert remove["reason"] == "ReplicationController old is no longer in the manifests"
    assert "source" not in remove  # a removal has no manifest to point at


def test_json_of_an_empty_plan_is_in_sync() -> None:
    document = json.loads(plan_json(Plan(), ""))
    assert document["in_sync"] is True
    assert document["changes"] == []
    assert document["summary"] == {}


def test_json_reports_unreachable_hosts_problems_and_skipped_prunes() -> None:
    problem = Diagnostic(Severity.ERROR, Location("a.yaml", 3, 5), "cannot be placed", "Pod", "x")
    result = scenario()
    skipped = result.actions.pop()
    result.skipped_prunes.append(skipped)
    result.unreachable["h3"] = "connection refused"
    result.problems.append(problem)
    document = json.loads(plan_json(result, REVISION))
    assert document["unreachable"] == {"h3": "connection refused"}
    assert document["problems"][0]["line"] == 3
    assert document["problems"][0]["message"] == "cannot be placed"
    assert [s["pod"] for s in document["skipped_prunes"]] == ["old-0"]
    assert document["in_sync"] is False


# -- text -----------------------------------------------------------------------------------
def test_text_grouped_by_host_with_field_lines() -> None:
    lines = plan_text_lines(scenario(), REVISION)
    texts = [text for text, _ in lines]
    assert texts[0] == "host h1: 1 change(s)"
    assert texts[1].startswith("  ~ recreate Pod/web pod web: spec changed: ")
    assert '      containers[app].image: "example/web:1.0" -> "example/web:1.1"' in texts
    assert '      containers[app].env.MODE: "blue-mode" -> "green-mode"' in texts
    h2 = texts.index("host h2: 2 change(s)")
    assert texts[h2 + 1] == (
        "  + create   ReplicationController/shop/api pod api-0: replica api-0 missing: "
        "ReplicationController api wants 1 pod(s), 0 exist"
    )
    assert texts[h2 + 2] == (
        "  - remove   ReplicationController/old pod old-0: "
        "ReplicationController old is no longer in the manifests"
    )
    assert texts[-1] == "revision 0123abcd: 1 create, 1 recreate, 1 remove"
    styles = dict(lines)
    assert styles["host h1: 1 change(s)"] == "bold"
    assert styles[texts[1]] == "yellow"
    assert styles[texts[h2 + 1]] == "green"
    assert styles[texts[h2 + 2]] == "red"


def test_text_of_an_in_sync_plan() -> None:
    assert plan_text_lines(Plan(), "") == [("revision (none): in sync", "bold green")]


def test_text_puts_unreachable_hosts_and_problems_first_and_skipped_prunes_last() -> None:
    result = scenario()
    result.skipped_prunes.append(result.actions.pop())
    result.unreachable["h3"] = "timed out"
    result.problems.append(Diagnostic(Severity.ERROR, Location("a.yaml", 3, 5), "no room"))
    texts = [text for text, _ in plan_text_lines(result, REVISION)]
    assert texts[0] == "host h3: UNREACHABLE: timed out"
    assert texts[1] == "a.yaml:3:5: error: no room"
    assert texts[-2] == (
        "  (not pruned, --no-prune) ReplicationController/old pod old-0 on h2: "
        "ReplicationController old is no longer in the manifests"
    )


def test_summary_text() -> None:
    assert summary_text({}) == "no changes"
    assert summary_text({"remove": 2, "create": 1}) == "1 create, 2 remove"


# -- markdown -------------------------------------------------------------------------------
def test_markdown_table_and_details() -> None:
    text = plan_markdown(scenario(), REVISION)
    lines = text.splitlines()
    assert lines[0] == "### reconciler diff for `0123abcd`"
    assert "**1 create, 1 recreate, 1 remove**" in lines
    header = lines.index("| Host | Action | Object | Pod | Container | Reason |")
    assert lines[header + 1] == "|---|---|---|---|---|---|"
    assert lines[header + 2].startswith(
        "| h1 | recreate | Pod/default/web | web |  | spec changed:"
    )
    assert lines[header + 3] == (
        "| h2 | create | ReplicationController/shop/api | api-0 |  | replica api-0 missing: "
        "ReplicationController api wants 1 pod(s), 0 exist |"
    )
    assert lines[header + 4].startswith("| h2 | remove | ReplicationController/default/old |")
    assert "<details><summary>Field changes</summary>" in lines
    assert "- `h1` Pod/web pod `web`" in lines
    assert '  - `containers[app].image: "example/web:1.0" -> "example/web:1.1"`' in lines
    assert text.endswith("</details>\n")


def test_markdown_of_an_in_sync_plan() -> None:
    assert plan_markdown(Plan(), "") == (
        "### reconciler diff for `working tree`\n\n**In sync**: no changes.\n"
    )


def test_markdown_escapes_table_cells() -> None:
    result = scenario()
    result.unreachable["h3"] = "bad | pipe\nnewline"
    text = plan_markdown(result, REVISION)
    assert "> :warning: host `h3` unreachable: bad \\| pipe newline" in text.splitlines()


# -- masking --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("DB_PASSWORD", True),
        ("password", True),
        ("GITHUB_TOKEN", True),
        ("client_secret", True),
        ("SSH_KEY", True),
        ("APIKEY", True),
        ("MODE", False),
        ("PASS", True),
        ("DB_PASS", True),
        ("KEYBOARD", True),  # hiding too much is harmless
        ("DATABASE_URL", False),
    ],
)
def test_secret_names(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret
    assert mask_env(name, "value") == (MASK if secret else "value")


def test_an_absent_value_stays_absent_when_masked() -> None:
    assert mask_env("DB_PASSWORD", None) is None


@pytest.mark.parametrize("render", ["json", "text", "markdown"])
def test_secret_values_never_shown(render: str) -> None:
    result = scenario()
    if render == "json":
        output = plan_json(result, REVISION)
    elif render == "text":
        output = "\n".join(text for text, _ in plan_text_lines(result, REVISION))
    else:
        output = plan_markdown(result, REVISION)
    for value in [*SECRETS_BEFORE.values(), *SECRETS_AFTER.values()]:
        assert value not in output
    for name in SECRETS_AFTER:  # the change itself is still reported, as digests
        assert f"containers[app].env.{name}" in output
    assert "<secret" in output
    # values of ordinary variables are shown
    assert "blue-mode" in output
    assert "green-mode" in output


def test_masking_keeps_added_and_removed_secrets_visible_as_such() -> None:
    before = web("example/web:1.0", {"OLD_TOKEN": "t-123456"})
    after = web("example/web:1.0", {"NEW_TOKEN": "t-654321"})
    loaded = parse_text(yaml.safe_dump(after), "web.yaml")
    live = {"h1": HostState("h1", True, tuple(running(before)))}
    result = plan(compute_desired(loaded.manifests, [H1], live, Settings()), live)
    document = json.loads(plan_json(result, ""))
    new, old = secret_marker("t-654321"), secret_marker("t-123456")
    assert document["changes"][0]["fields"] == [
        {"path": "containers[app].env.NEW_TOKEN", "old": None, "new": new, "secret": True},
        {"path": "containers[app].env.OLD_TOKEN", "old": old, "new": None, "secret": True},
    ]
    text = "\n".join(t for t, _ in plan_text_lines(result, ""))
    assert f'containers[app].env.NEW_TOKEN: null -> "{new}"' in text
    assert "t-123456" not in text and "t-654321" not in text
