"""Smoke tests of bench/converge.py's pure parts (no Docker, no timing)."""

from __future__ import annotations

import yaml

from bench.converge import (
    RequestCounter,
    compose_file,
    endpoint,
    overall,
    rc_manifest,
    split_containers,
    summarise,
)
from reconciler.check.validate import validate
from reconciler.desire.compute import compute_desired
from reconciler.desire.settings import Settings
from reconciler.source.hosts import Host
from reconciler.source.load import parse_bytes


def test_rc_manifest_is_valid_and_gives_the_pods_asked_for() -> None:
    text = rc_manifest("fleet", 3, "bench/app:1", apps_per_pod=2)
    result = validate(parse_bytes(text.encode(), "m.yaml"))
    assert result.valid, result.diagnostics
    host = Host(name="local", url="unix:///x.sock", address="127.0.0.1")
    pods = compute_desired(result.manifests, [host], {}, Settings(instance="b")).pods
    assert [p.name for p in pods] == ["fleet-0", "fleet-1", "fleet-2"]
    assert all(len(p.containers) == 3 for p in pods)  # infra + 2 apps
    assert pods[0].containers[1].cmd == ("/bin/sleep", "2147483647")


def test_compose_file_mirrors_the_manifest() -> None:
    data = yaml.safe_load(compose_file(2, 5, "bench/app:1"))
    assert data["version"] == "2.4"
    assert sorted(data["services"]) == ["c0", "c1"]
    service = data["services"]["c0"]
    assert service["scale"] == 5
    assert service["image"] == "bench/app:1"
    assert service["command"] == ["/bin/sleep", "2147483647"]
    assert "init" not in service


def test_split_containers() -> None:
    assert split_containers(1000, 10) == (100, 1000)
    assert split_containers(1000, 1) == (1000, 1000)
    assert split_containers(5, 10) == (1, 10)


def test_request_counter_follows_bodies_in_pieces() -> None:
    body = b'{"Image": "x"}'
    stream = (
        b"GET /v1.41/containers/json?all=1 HTTP/1.1\r\nHost: docker\r\n\r\n"
        b"POST /v1.41/containers/create?name=a HTTP/1.1\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
        + b"POST /v1.41/build HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4\r\nabcd\r\n0\r\n\r\n"
        b"GET /v1.41/containers/0123456789abcdef/json HTTP/1.1\r\n\r\n"
    )
    counter = RequestCounter()
    for i in range(0, len(stream), 7):  # arbitrary splits
        counter.feed(stream[i : i + 7])
    assert [m for m, _ in counter.requests] == ["GET", "POST", "POST", "GET"]
    assert summarise(counter.requests) == {
        "GET /containers/json": 1,
        "POST /containers/create": 1,
        "POST /build": 1,
        "GET /containers/*/json": 1,
    }


def test_endpoint_normalises_ids_and_names() -> None:
    assert endpoint("POST", "/v1.41/containers/web_1/start") == "POST /containers/*/start"
    assert endpoint("GET", "/v1.41/images/busybox:1/json") == "GET /images/*/json"
    assert endpoint("GET", "/v1.41/images/bench/app:1/json") == "GET /images/*/json"
    assert endpoint("GET", "/version") == "GET /version"


def test_overall_needs_every_check_measured() -> None:
    create = {"pass_inprocess": True, "pass_cli": True}
    noop = {"pass_one_list_call": True, "in_sync": True, "pass_ratio_cli": False}
    assert overall({"create": create}) == "PASS"
    assert overall({"create": create, "noop": noop}) == "FAIL"
    assert overall({"noop": {**noop, "pass_ratio_cli": True}}) == "PASS"
    # docker-compose could not run (once it crashed on 1,100 containers): not a PASS
    peerless = {"pass_one_list_call": True, "in_sync": True}
    assert overall({"noop": peerless}) == "NOT MEASURED"
    assert overall({"create": create, "noop": peerless}) == "NOT MEASURED"
    assert overall({}) == "NOT MEASURED"
