"""The Docker hosts to reconcile, from a hosts file or the environment. Pure.

A hosts file reuses the manifest loader, so its mistakes get file:line:column too::

    hosts:
      - name: h1
        url: tcp://10.231.0.11:2375     # unix://, tcp://, ssh://
        address: 10.231.0.11            # where its published ports are reachable
        labels: {zone: a}
        capacity: {cpu: 2, memory: 4Gi} # optional, used for placement
        tls: {ca: ca.pem, cert: cert.pem, key: key.pem, verify: true}   # optional
        storage_classes:                # optional: a claim's storageClassName -> volume driver
          fast: local                   #   (no class: the "local" driver)
          nfs: {driver: local, options: {type: nfs, o: "addr=10.0.0.5", device: ":/export"}}
        ssh: {identity: id_ed25519, known_hosts: known_hosts}          # optional, ssh://

Relative paths in ``tls`` and ``ssh`` are relative to the hosts file's directory
(``load_hosts``). Without a hosts file, ``DOCKER_HOST`` names the one host, with TLS when
``DOCKER_TLS_VERIFY`` is set (certificates in ``DOCKER_CERT_PATH``, as the docker CLI has it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from reconciler.core import names
from reconciler.core.errors import HostsFileError, QuantityError
from reconciler.core.model import Diagnostic, Location, Severity
from reconciler.core.quantity import cpu_to_nano, memory_to_bytes
from reconciler.source.load import parse_bytes

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
DEFAULT_API_VERSION = "1.41"  # Docker Engine 20.10; fixed so that no call is spent negotiating
_HOST_FIELDS = {
    "name",
    "url",
    "address",
    "labels",
    "capacity",
    "tls",
    "api_version",
    "storage_classes",
    "ssh",
}
DEFAULT_VOLUME_DRIVER = "local"
_TLS_FIELDS = {"ca", "cert", "key", "verify"}
_SSH_FIELDS = {"identity", "known_hosts"}


@dataclass(frozen=True, slots=True)
class TLSConfig:
    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    verify: bool = True


@dataclass(frozen=True, slots=True)
class SSHConfig:
    """For ``ssh://`` hosts: the private key and the known_hosts file ssh is to use (else
    ssh's own defaults and ``~/.ssh/config``)."""

    identity: str | None = None
    known_hosts: str | None = None


@dataclass(frozen=True, slots=True)
class Host:
    """One Docker engine the reconciler manages."""

    name: str
    url: str
    address: str
    labels: Mapping[str, str] = field(default_factory=dict)
    cpu_nano: int | None = None
    memory_bytes: int | None = None
    tls: TLSConfig | None = None
    api_version: str = DEFAULT_API_VERSION
    #: storageClassName -> (volume driver, driver options) for the claims' volumes
    storage_classes: Mapping[str, tuple[str, tuple[tuple[str, str], ...]]] = field(
        default_factory=dict
    )
    ssh: SSHConfig | None = None


def default_hosts(environ: Mapping[str, str]) -> list[Host]:
    """One host: ``DOCKER_HOST`` if set, else the local socket; TLS as the docker CLI
    reads it (``DOCKER_TLS_VERIFY``, ``DOCKER_CERT_PATH``)."""
    url = environ.get("DOCKER_HOST") or DEFAULT_SOCKET
    parsed = urlparse(url)
    address = (
        parsed.hostname if parsed.scheme in ("tcp", "ssh") and parsed.hostname else ("127.0.0.1")
    )
    tls = None
    if environ.get("DOCKER_TLS_VERIFY") and parsed.scheme == "tcp":
        certs = Path(environ.get("DOCKER_CERT_PATH") or Path(environ.get("HOME", "~")) / ".docker")
        tls = TLSConfig(str(certs / "ca.pem"), str(certs / "cert.pem"), str(certs / "key.pem"))
    return [Host(name="local", url=url, address=address, tls=tls)]


def parse_hosts(data: bytes, filename: str) -> list[Host]:
    """Parse a hosts file; raises HostsFileError with every problem found."""
    loaded = parse_bytes(data, filename)
    problems = [d for d in loaded.diagnostics if d.is_error]
    if problems:
        raise HostsFileError(problems)
    if len(loaded.manifests) != 1:
        raise HostsFileError(
            [
                Diagnostic(
                    Severity.ERROR,
                    Location(filename, 1, 1),
                    "expected one document with a 'hosts' list",
                )
            ]
        )
    document = loaded.manifests[0]

    def error(path: tuple[str | int, ...], message: str) -> None:
        problems.append(
            Diagnostic(
                Severity.ERROR, document.locate(path), message, path=".".join(map(str, path))
            )
        )

    body = document.body
    for key in body:
        if key != "hosts":
            error((key,), f"unknown field {key!r} (a hosts file has one field: hosts)")
    entries = body.get("hosts")
    if not isinstance(entries, list) or not entries:
        error(("hosts",), "'hosts' must be a non-empty list of hosts")
        raise HostsFileError(problems)
    hosts: list[Host] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        at: tuple[str | int, ...] = ("hosts", index)
        if not isinstance(entry, dict):
            error(at, "each host must be a mapping with name, url and address")
            continue
        for key in entry:
            if key not in _HOST_FIELDS:
                error(
                    at + (key,), f"unknown field {key!r} (known: {', '.join(sorted(_HOST_FIELDS))})"
                )
        host = _parse_host(entry, at, error)
        name = entry.get("name")
        if isinstance(name, str):  # even when another field is wrong: report every problem
            if name in seen:
                error(at + ("name",), f"duplicate host name {name!r}")
            seen.add(name)
        if host is not None:
            hosts.append(host)
    if problems:
        raise HostsFileError(problems)
    return hosts


def _parse_host(entry: Mapping[str, Any], at: tuple[str | int, ...], error: Any) -> Host | None:
    ok = True
    name, url, address = entry.get("name"), entry.get("url"), entry.get("address")
    if not isinstance(name, str) or names.dns1123_label(name):
        error(
            at + ("name",), "host name must be a DNS-1123 label (lower-case letters, digits, '-')"
        )
        ok = False
    if not isinstance(url, str) or urlparse(url).scheme not in (
        "unix",
        "tcp",
        "ssh",
        "http",
        "https",
    ):
        error(at + ("url",), "url must be unix:///path, tcp://host:port or ssh://user@host")
        ok = False
    if address is None and isinstance(url, str):
        parsed = urlparse(url)
        address = parsed.hostname if parsed.scheme != "unix" else "127.0.0.1"
    if not isinstance(address, str) or not address:
        error(
            at + ("address",),
            "address (where the host's published ports are reachable) is required",
        )
        ok = False
    labels = entry.get("labels", {})
    if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
        error(at + ("labels",), "labels must be a mapping of strings")
        ok = False
    cpu_nano = memory_bytes = None
    capacity = entry.get("capacity", {})
    if not isinstance(capacity, dict):
        error(at + ("capacity",), "capacity must be a mapping with cpu and/or memory")
        ok = False
    else:
        try:
            if "cpu" in capacity:
                cpu_nano = cpu_to_nano(capacity["cpu"])
            if "memory" in capacity:
                memory_bytes = memory_to_bytes(capacity["memory"])
        except (QuantityError, TypeError) as exc:
            error(at + ("capacity",), f"capacity: {exc}")
            ok = False
    tls = None
    raw_tls = entry.get("tls")
    if raw_tls is not None:
        if not isinstance(raw_tls, dict) or set(raw_tls) - _TLS_FIELDS:
            error(at + ("tls",), f"tls must be a mapping with {', '.join(sorted(_TLS_FIELDS))}")
            ok = False
        else:
            tls = TLSConfig(
                raw_tls.get("ca"),
                raw_tls.get("cert"),
                raw_tls.get("key"),
                bool(raw_tls.get("verify", True)),
            )
    ssh = None
    raw_ssh = entry.get("ssh")
    if raw_ssh is not None:
        if (
            not isinstance(raw_ssh, dict)
            or set(raw_ssh) - _SSH_FIELDS
            or not all(isinstance(v, str) for v in raw_ssh.values())
        ):
            error(at + ("ssh",), f"ssh must be a mapping with {', '.join(sorted(_SSH_FIELDS))}")
            ok = False
        elif not isinstance(url, str) or not url.startswith("ssh://"):
            error(at + ("ssh",), "ssh settings are for ssh:// urls")
            ok = False
        else:
            ssh = SSHConfig(raw_ssh.get("identity"), raw_ssh.get("known_hosts"))
    api_version = entry.get("api_version", DEFAULT_API_VERSION)
    classes = _storage_classes(entry.get("storage_classes", {}), at, error)
    if classes is None:
        ok = False
    if not ok or not isinstance(name, str) or not isinstance(url, str):
        return None
    assert isinstance(address, str)
    return Host(
        name=name,
        url=url,
        address=address,
        labels=dict(labels),
        cpu_nano=cpu_nano,
        memory_bytes=memory_bytes,
        tls=tls,
        api_version=str(api_version),
        storage_classes=classes or {},
        ssh=ssh,
    )


def _storage_classes(
    raw: Any, at: tuple[str | int, ...], error: Any
) -> dict[str, tuple[str, tuple[tuple[str, str], ...]]] | None:
    """``storage_classes``: class -> a driver name, or ``{driver, options}``."""
    where = at + ("storage_classes",)
    if not isinstance(raw, dict):
        error(where, "storage_classes must map a storage class name to a volume driver")
        return None
    classes: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {}
    for name, value in raw.items():
        if isinstance(value, str) and value:
            classes[str(name)] = (value, ())
            continue
        if isinstance(value, dict) and set(value) <= {"driver", "options"}:
            driver, options = value.get("driver", DEFAULT_VOLUME_DRIVER), value.get("options", {})
            if isinstance(driver, str) and isinstance(options, dict):
                classes[str(name)] = (driver, tuple((str(k), str(v)) for k, v in options.items()))
                continue
        error(
            where + (name,),
            "a storage class is a volume driver name, or a mapping with driver and options",
        )
        return None
    return classes


def load_hosts(path: str | None, environ: Mapping[str, str]) -> list[Host]:
    """The hosts to manage: from ``path`` when given, else the default single host."""
    if path is None:
        return default_hosts(environ)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise HostsFileError(
            [
                Diagnostic(
                    Severity.ERROR,
                    Location(path, 1, 1),
                    f"cannot read hosts file: {exc.strerror or exc}",
                )
            ]
        ) from exc
    return [_relative_to(Path(path).parent, host) for host in parse_hosts(data, path)]


def _relative_to(directory: Path, host: Host) -> Host:
    """``host`` with the relative paths of its tls and ssh settings made relative to
    ``directory`` (the hosts file's): a service's working directory is nobody's choice."""

    def anchor(value: str | None) -> str | None:
        if value is None:
            return None
        expanded = Path(value).expanduser()
        return str(expanded if expanded.is_absolute() else directory / expanded)

    tls = host.tls
    if tls is not None:
        tls = TLSConfig(anchor(tls.ca), anchor(tls.cert), anchor(tls.key), tls.verify)
    ssh = host.ssh
    if ssh is not None:
        ssh = SSHConfig(anchor(ssh.identity), anchor(ssh.known_hosts))
    return replace(host, tls=tls, ssh=ssh)
