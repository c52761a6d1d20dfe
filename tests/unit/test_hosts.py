"""Hosts files: parsed into Host values, every mistake with file:line:column and field path."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.core.errors import HostsFileError
from reconciler.core.model import Diagnostic
from reconciler.source.hosts import (
    DEFAULT_API_VERSION,
    DEFAULT_SOCKET,
    Host,
    TLSConfig,
    default_hosts,
    load_hosts,
    parse_hosts,
)

VALID = """\
# two engines
hosts:
  - name: h1
    url: tcp://10.231.0.11:2375
    address: 10.231.0.11
    labels: {zone: a, disk: ssd}
    capacity: {cpu: 2, memory: 4Gi}
  - name: h2
    url: ssh://deploy@h2.example.com
    tls: {ca: ca.pem, cert: cert.pem, key: key.pem, verify: false}
    api_version: "1.43"
  - name: local
    url: unix:///var/run/docker.sock
"""


def problems(text: str, filename: str = "hosts.yaml") -> list[Diagnostic]:
    with pytest.raises(HostsFileError) as info:
        parse_hosts(text.encode(), filename)
    return info.value.diagnostics


def where(d: Diagnostic) -> str:
    return f"{d.location.file}:{d.location.line}:{d.location.column}"


def test_valid_file() -> None:
    h1, h2, local = parse_hosts(VALID.encode(), "hosts.yaml")
    assert h1 == Host(
        name="h1",
        url="tcp://10.231.0.11:2375",
        address="10.231.0.11",
        labels={"zone": "a", "disk": "ssd"},
        cpu_nano=2_000_000_000,
        memory_bytes=4 * 2**30,
        tls=None,
        api_version=DEFAULT_API_VERSION,
    )
    assert h2.address == "h2.example.com"  # from the url when not given
    assert h2.tls == TLSConfig(ca="ca.pem", cert="cert.pem", key="key.pem", verify=False)
    assert h2.api_version == "1.43"
    assert (h2.cpu_nano, h2.memory_bytes, dict(h2.labels)) == (None, None, {})
    assert local.address == "127.0.0.1"  # a unix socket publishes on this machine


def test_tls_verify_defaults_to_true() -> None:
    text = "hosts:\n  - {name: h1, url: 'tcp://h1:2376', tls: {ca: ca.pem}}\n"
    (host,) = parse_hosts(text.encode(), "hosts.yaml")
    assert host.tls == TLSConfig(ca="ca.pem", verify=True)


@pytest.mark.parametrize(
    ("environ", "url", "address"),
    [
        ({}, DEFAULT_SOCKET, "127.0.0.1"),
        ({"DOCKER_HOST": ""}, DEFAULT_SOCKET, "127.0.0.1"),
        ({"DOCKER_HOST": "tcp://10.0.0.5:2375"}, "tcp://10.0.0.5:2375", "10.0.0.5"),
        (
            {"DOCKER_HOST": "ssh://me@build.example.com"},
            "ssh://me@build.example.com",
            "build.example.com",
        ),
        (
            {"DOCKER_HOST": "unix:///run/user/1000/docker.sock"},
            "unix:///run/user/1000/docker.sock",
            "127.0.0.1",
        ),
    ],
)
def test_defaults_from_docker_host(environ: dict[str, str], url: str, address: str) -> None:
    assert default_hosts(environ) == [Host(name="local", url=url, address=address)]


def test_load_hosts_without_a_file_uses_the_environment() -> None:
    assert load_hosts(None, {"DOCKER_HOST": "tcp://10.0.0.9:2375"})[0].address == "10.0.0.9"


def test_load_hosts_reads_the_file(tmp_path: Path) -> None:
    path = tmp_path / "hosts.yaml"
    path.write_text(VALID)
    assert [h.name for h in load_hosts(str(path), {})] == ["h1", "h2", "local"]


def test_load_hosts_unreadable_file(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.yaml")
    with pytest.raises(HostsFileError) as info:
        load_hosts(missing, {})
    (d,) = info.value.diagnostics
    assert where(d) == f"{missing}:1:1"
    assert d.message.startswith("cannot read hosts file: ")


def test_unknown_field() -> None:
    text = "hosts:\n  - name: h1\n    url: tcp://h1:2375\n    adress: 10.0.0.1\n"
    (d,) = problems(text)
    assert where(d) == "hosts.yaml:4:5"
    assert d.path == "hosts.0.adress"
    assert d.message.startswith("unknown field 'adress' (known: address, api_version, capacity")
    assert str(d.location) in str(HostsFileError([d]))


def test_unknown_top_level_field() -> None:
    (d,) = problems("hosts:\n  - {name: h1, url: 'tcp://h1:2375'}\nhost: []\n")
    assert where(d) == "hosts.yaml:3:1"
    assert d.path == "host"
    assert d.message == "unknown field 'host' (a hosts file has one field: hosts)"


def test_duplicate_name() -> None:
    text = "hosts:\n  - name: h1\n    url: tcp://a:2375\n  - name: h1\n    url: tcp://b:2375\n"
    (d,) = problems(text)
    assert where(d) == "hosts.yaml:4:5"
    assert d.path == "hosts.1.name"
    assert d.message == "duplicate host name 'h1'"


@pytest.mark.parametrize("url", ["http//nope", "ftp://h1", "10.0.0.1:2375", "42"])
def test_bad_url(url: str) -> None:
    text = f"hosts:\n  - name: h1\n    url: '{url}'\n    address: 10.0.0.1\n"
    (d,) = problems(text)
    assert where(d) == "hosts.yaml:3:5"
    assert d.path == "hosts.0.url"
    assert d.message.startswith("url must be unix:///path, tcp://host:port or ssh://")


def test_missing_url_points_at_the_host() -> None:
    (d,) = problems("hosts:\n  - name: h1\n    address: 10.0.0.1\n")
    assert d.path == "hosts.0.url"
    assert where(d) == "hosts.yaml:2:5"  # no url line: the closest written ancestor


@pytest.mark.parametrize(
    ("capacity", "fragment"),
    [
        ("{cpu: lots}", "'lots' is not a quantity"),
        ("{memory: 4GB}", "'4GB' is not a quantity"),
        ("[2, 4Gi]", "capacity must be a mapping with cpu and/or memory"),
    ],
)
def test_bad_capacity(capacity: str, fragment: str) -> None:
    text = f"hosts:\n  - name: h1\n    url: tcp://h1:2375\n    capacity: {capacity}\n"
    (d,) = problems(text)
    assert where(d) == "hosts.yaml:4:5"
    assert d.path == "hosts.0.capacity"
    assert fragment in d.message


@pytest.mark.parametrize(
    ("entry", "path", "fragment"),
    [
        ("{name: H_1, url: 'tcp://h:1'}", "hosts.0.name", "DNS-1123 label"),
        ("{url: 'tcp://h:1'}", "hosts.0.name", "DNS-1123 label"),
        ("{name: h1, url: 'tcp://:2375'}", "hosts.0.address", "address (where the host's"),
        ("{name: h1, url: 'tcp://h:1', labels: {zone: 1}}", "hosts.0.labels", "mapping of str"),
        ("{name: h1, url: 'tcp://h:1', tls: {ca: a, pem: b}}", "hosts.0.tls", "tls must be"),
        ("just-a-name", "hosts.0", "each host must be a mapping"),
    ],
)
def test_other_errors_name_their_field(entry: str, path: str, fragment: str) -> None:
    (d,) = problems(f"hosts:\n  - {entry}\n")
    assert d.path == path
    assert fragment in d.message
    assert d.location.file == "hosts.yaml"
    assert d.location.line == 2


def test_every_problem_is_reported_at_once() -> None:
    text = (
        "hosts:\n"
        "  - name: h1\n"
        "    url: ftp://h1\n"
        "  - name: h2\n"
        "    url: tcp://h2:2375\n"
        "    capacity: {cpu: x}\n"
        "  - name: h2\n"
        "    url: tcp://h3:2375\n"
        "    colour: red\n"
    )
    found = sorted((d.location.line, d.path) for d in problems(text))
    assert found == [
        (3, "hosts.0.url"),
        (6, "hosts.1.capacity"),
        (7, "hosts.2.name"),  # h2 again: a duplicate even though the first h2 is broken
        (9, "hosts.2.colour"),
    ]


def test_duplicate_after_a_broken_first_entry_is_still_found() -> None:
    text = (
        "hosts:\n"
        "  - name: h1\n"
        "    url: tcp://a:2375\n"
        "    capacity: {cpu: x}\n"
        "  - name: h1\n"
        "    url: tcp://b:2375\n"
    )
    found = [(d.location.line, d.path, d.message) for d in problems(text)]
    assert found == [
        (4, "hosts.0.capacity", "capacity: 'x' is not a quantity (examples: 0.5, 500m, 128Mi, 1G)"),
        (5, "hosts.1.name", "duplicate host name 'h1'"),
    ]


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("", 1, "expected one document with a 'hosts' list"),
        ("hosts: []\n", 1, "'hosts' must be a non-empty list of hosts"),
        ("hosts: {h1: x}\n", 1, "'hosts' must be a non-empty list of hosts"),
        ("hosts:\n\t- name: h1\n", 2, "invalid YAML: tab character"),
        ("hosts: [a]\n---\nhosts: [b]\n", 1, "expected one document"),
    ],
)
def test_file_level_errors(text: str, line: int, fragment: str) -> None:
    (d, *_) = problems(text, "inventory/hosts.yaml")
    assert d.location.file == "inventory/hosts.yaml"
    assert d.location.line == line
    assert fragment in d.message
