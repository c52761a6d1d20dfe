"""Smoke tests of the pure parts of bench/services.py and bench/service.py (no Docker, no
git, no timing): the manifests they apply, the parsers, the verdicts."""

from __future__ import annotations

import email.message
import json
import math

import pytest
import yaml

from bench.service import (
    LATENCY_TARGETS,
    cpu_ticks,
    github_headers,
    marker_pod,
    metric_value,
    push_body,
    service_targets,
    status_kib,
    summary,
)
from bench.services import (
    HOSTS_NODE_PORT,
    POLICY_FLAGS,
    echo_manifests,
    fleet_manifests,
    free_subnet,
    hosts_subset,
    last_line,
    percentile,
    rotated,
    services_targets,
    stream_blocks,
    target,
)
from reconciler.check.policy import Policy
from reconciler.check.validate import ValidationResult, validate
from reconciler.daemon.http import webhook as httpapi
from reconciler.desire.compute import compute_desired
from reconciler.desire.settings import Settings
from reconciler.source.hosts import Host
from reconciler.source.load import parse_bytes

LOCAL = Host(name="local", url="unix:///x.sock", address="127.0.0.1")


def valid(text: str) -> ValidationResult:
    policy = Policy.from_flags(POLICY_FLAGS[1], ())  # what the benchmark passes to apply
    result = validate(parse_bytes(text.encode(), "bench.yaml"), policy)
    assert result.valid, result.diagnostics
    assert not result.warnings, result.warnings
    return result


# -- bench.services ----------------------------------------------------------------------------
def test_echo_manifests_publish_both_paths_on_loopback_only() -> None:
    text = echo_manifests("echo", "sample/frontend:1.0", (24001, 24002), (31001, 31002), 8)
    result = valid(text)
    state = compute_desired(result.manifests, [LOCAL], {}, Settings(instance="b"))
    pods = {p.name: p for p in state.pods}
    assert set(pods) == {"echo", "svc_echo"}
    infra, echo, stream = pods["echo"].containers
    bindings = {(b.container_port, b.host_port, b.host_ip) for b in infra.ports}
    assert bindings == {(7000, 24001, "127.0.0.1"), (7001, 24002, "127.0.0.1")}
    assert echo.entrypoint == ("nc", "-ll", "-p", "7000", "-e", "cat")
    block, count = stream_blocks(8)
    assert stream.entrypoint is not None and stream.entrypoint[-1] == (
        f"dd if=/dev/zero bs={block} count={count} 2>/dev/null"
    )
    (service,) = state.services
    assert service.type == "NodePort"
    assert [(p.port, p.target, p.node_port) for p in service.ports] == [
        (7000, "echo", 31001),
        (7001, "stream", 31002),
    ]
    forwarder = pods["svc_echo"].containers[0]
    assert {(b.host_port, b.host_ip) for b in forwarder.ports} == {
        (31001, "127.0.0.1"),
        (31002, "127.0.0.1"),
    }


def test_stream_blocks_cover_the_size_asked_for() -> None:
    assert stream_blocks(200) == (65536, 3200)
    block, count = stream_blocks(1)
    assert block * count == 2**20
    assert stream_blocks(0) == (65536, 1)


def test_fleet_manifests_spread_over_three_hosts() -> None:
    result = valid(fleet_manifests("web", 30, "sample/frontend:1.0"))
    hosts = [
        Host(name=f"h{i}", url=f"tcp://10.231.0.1{i}:2375", address=f"10.231.0.1{i}")
        for i in (1, 2, 3)
    ]
    state = compute_desired(result.manifests, hosts, {}, Settings(instance="b"))
    workload = [p for p in state.pods if p.owner.kind == "ReplicationController"]
    assert len(workload) == 30
    per_host = {h.name: sum(p.host == h.name for p in workload) for h in hosts}
    assert per_host == {"h1": 10, "h2": 10, "h3": 10}
    forwarders = [p for p in state.pods if p.owner.kind == "Service"]
    assert sorted(p.host for p in forwarders) == ["h1", "h2", "h3"]
    assert state.services[0].ports[0].node_port == HOSTS_NODE_PORT


def test_free_subnet_avoids_every_network_in_use() -> None:
    assert free_subnet([]) == "10.210.0.0/20"
    used = ["10.210.0.0/20", "172.17.0.0/16", "10.210.16.0/24", "not a subnet", "fd00::/64"]
    assert free_subnet(used) == "10.210.32.0/20"
    # a network covering the whole pool leaves nothing
    with pytest.raises(RuntimeError):
        free_subnet(["10.0.0.0/8"])
    # the seed moves the start, never onto a used slot
    for seed in ("bench-1", "bench-2", "bench-abcdef12-paths"):
        chosen = free_subnet(used, seed=seed)
        assert chosen.endswith("/20") and chosen not in ("10.210.0.0/20", "10.210.16.0/20")


def test_hosts_subset_keeps_one_host() -> None:
    text = (
        "hosts:\n"
        "  - {name: h1, url: 'tcp://10.231.0.11:2375', address: 10.231.0.11}\n"
        "  - {name: h2, url: 'tcp://10.231.0.12:2375', address: 10.231.0.12}\n"
    )
    kept = yaml.safe_load(hosts_subset(text, ["h1"]))
    assert kept == {
        "hosts": [{"name": "h1", "url": "tcp://10.231.0.11:2375", "address": "10.231.0.11"}]
    }
    with pytest.raises(ValueError):
        hosts_subset(text, ["h9"])


def test_last_line_and_rotation() -> None:
    assert last_line("testhosts: up\n/var/tmp/x/hosts.yaml\n\n") == "/var/tmp/x/hosts.yaml"
    with pytest.raises(ValueError):
        last_line("\n")
    assert rotated(["a", "b", "c"], 0) == ["a", "b", "c"]
    assert rotated(["a", "b", "c"], 4) == ["b", "c", "a"]
    assert rotated([], 3) == []


def test_percentile_nearest_rank() -> None:
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert percentile(values, 0.0) == 1.0
    assert percentile(values, 0.5) == 3.0
    assert percentile(values, 1.0) == 5.0
    assert math.isnan(percentile([], 0.9))


def test_targets_pass_fail_and_skip() -> None:
    assert target("x", 1.0, "<=", 1.0)["status"] == "PASS"
    assert target("x", 1.01, "<=", 1.0)["status"] == "FAIL"
    assert target("x", 0.04, ">=", 0.05)["status"] == "FAIL"
    assert target("x", None, ">=", 0.05)["status"] == "NOT MEASURED"
    assert target("x", float("nan"), "<=", 1.0)["status"] == "NOT MEASURED"
    rows = services_targets(
        {"paths": {"latency_ratio": 2.0, "throughput_ratio": 0.01}, "hosts": {"skipped": "busy"}}
    )
    assert [r["status"] for r in rows] == ["PASS", "FAIL", "NOT MEASURED"]


# -- bench.service -----------------------------------------------------------------------------
def test_marker_pod_is_valid_and_carries_the_value() -> None:
    result = valid(marker_pod("v7"))
    pods = compute_desired(result.manifests, [LOCAL], {}, Settings(instance="b")).pods
    (pod,) = pods
    app = pod.containers[1]
    assert pod.name == "marker" and app.container == "app"
    assert ("VALUE", "v7") in app.env
    # another value is another spec: the reconciler must recreate the pod
    other = compute_desired(valid(marker_pod("v8")).manifests, [LOCAL], {}, Settings("b")).pods
    assert other[0].spec_hash != pod.spec_hash


def test_webhook_is_signed_as_the_service_checks() -> None:
    body = push_body("main")
    assert json.loads(body)["ref"] == "refs/heads/main"
    headers = github_headers("s3cret", body)
    assert headers["X-GitHub-Event"] == "push"
    assert headers["X-Hub-Signature-256"] == httpapi.sign("s3cret", body)
    message = email.message.Message()
    for key, value in headers.items():
        message[key] = value
    assert httpapi._authenticate(message, body, "s3cret") == ("github", "")
    assert httpapi._authenticate(message, body, "other")[0] is None


def test_proc_parsers() -> None:
    status = "Name:\treconciler\nVmHWM:\t   81234 kB\nVmRSS:\t   70000 kB\nThreads:\t7\n"
    assert status_kib(status, "VmRSS") == 70000
    assert status_kib(status, "VmHWM") == 81234
    with pytest.raises(ValueError):
        status_kib(status, "VmSwap")
    # a command name with spaces and parentheses; utime 11, stime 7, cutime 2, cstime 1
    fields = ["S", "1", "2", "3", "0", "-1", "4194560", "10", "0", "0", "0", "11", "7", "2", "1"]
    stat = "1234 (odd) name (x)) " + " ".join(fields + ["20", "0", "9"])
    assert cpu_ticks(stat) == 21


def test_metric_value_reads_unlabelled_samples() -> None:
    text = (
        "# HELP reconciler_objects_managed Containers.\n"
        "# TYPE reconciler_objects_managed gauge\n"
        "reconciler_objects_managed 1101.0\n"
        'reconciler_hosts{host="local"} 1.0\n'
        "reconciler_objects_managed_total 3\n"
    )
    assert metric_value(text, "reconciler_objects_managed") == 1101.0
    assert metric_value(text, "reconciler_hosts") is None
    assert metric_value(text, "missing") is None


def test_service_targets() -> None:
    assert summary([]) == {"median_s": None, "best_s": None, "samples": []}
    assert summary([3.0, 1.0, 2.0])["median_s"] == 2.0
    results = {
        "latency": {
            "poll": {"ratio": 1.2, "timeouts": 0},
            "webhook": {"ratio": 0.5, "timeouts": 1},  # a change never landed: FAIL
            "watch": {"ratio": 1.3, "timeouts": 0},
        },
        "fleet": {"rss_ratio": 1.4, "cpu_ratio": 0.3},
    }
    rows = service_targets(results)
    assert [r["status"] for r in rows] == ["PASS", "FAIL", "FAIL", "PASS", "PASS"]
    assert rows[0]["limit"] == LATENCY_TARGETS["poll"]
    assert [r["status"] for r in service_targets({})] == ["NOT MEASURED"] * 5
