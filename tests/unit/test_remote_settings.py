"""How remote engines are reached: the hosts file's ``ssh:`` and ``tls:`` settings, their
paths read from the hosts file's directory, the docker CLI's TLS variables, and the ssh
command line the engine runs (batch mode: never a prompt)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.core.errors import HostsFileError
from reconciler.engine.ssh import ssh_command
from reconciler.source.hosts import SSHConfig, TLSConfig, default_hosts, load_hosts, parse_hosts

SSH_HOST = """\
hosts:
  - name: far
    url: ssh://deploy@far.example.com:2222
    ssh: {identity: keys/id_ed25519, known_hosts: /etc/reconciler/known_hosts}
  - name: tls
    url: tcp://10.0.0.9:2376
    tls: {ca: certs/ca.pem, cert: certs/cert.pem, key: ~/key.pem}
"""


def test_ssh_and_tls_paths_are_relative_to_the_hosts_file(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "hosts.yaml"
    path.parent.mkdir()
    path.write_text(SSH_HOST)
    far, tls = load_hosts(str(path), {})
    assert far.ssh == SSHConfig(
        str(tmp_path / "etc" / "keys" / "id_ed25519"), "/etc/reconciler/known_hosts"
    )
    assert tls.tls == TLSConfig(
        str(tmp_path / "etc" / "certs" / "ca.pem"),
        str(tmp_path / "etc" / "certs" / "cert.pem"),
        str(Path("~/key.pem").expanduser()),
    )
    # parsing alone keeps them as written (a value, no file system)
    assert parse_hosts(SSH_HOST.encode(), "hosts.yaml")[0].ssh == SSHConfig(
        "keys/id_ed25519", "/etc/reconciler/known_hosts"
    )


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        ("{name: a, url: 'ssh://a', ssh: {identity: k, port: 22}}", "ssh must be a mapping"),
        ("{name: a, url: 'ssh://a', ssh: [k]}", "ssh must be a mapping"),
        ("{name: a, url: 'tcp://a:2376', ssh: {identity: k}}", "ssh settings are for ssh://"),
    ],
)
def test_bad_ssh_settings_name_the_field(entry: str, fragment: str) -> None:
    with pytest.raises(HostsFileError) as raised:
        parse_hosts(f"hosts:\n  - {entry}\n".encode(), "hosts.yaml")
    [problem] = raised.value.diagnostics
    assert problem.path == "hosts.0.ssh" and fragment in problem.message


def test_the_docker_cli_tls_variables_make_the_default_host_a_tls_one() -> None:
    [host] = default_hosts(
        {"DOCKER_HOST": "tcp://10.0.0.9:2376", "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": "/c"}
    )
    assert host.tls == TLSConfig("/c/ca.pem", "/c/cert.pem", "/c/key.pem", True)
    [plain] = default_hosts({"DOCKER_HOST": "tcp://10.0.0.9:2375"})
    assert plain.tls is None


def test_the_ssh_command_never_prompts_and_uses_the_hosts_file_keys() -> None:
    far = parse_hosts(SSH_HOST.encode(), "hosts.yaml")[0]
    assert ssh_command(far) == [
        "ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
        "-i", "keys/id_ed25519", "-o", "IdentitiesOnly=yes",
        "-o", "UserKnownHostsFile=/etc/reconciler/known_hosts",
        "-l", "deploy", "-p", "2222", "--", "far.example.com", "docker system dial-stdio",
    ]  # fmt: skip
    [bare] = default_hosts({"DOCKER_HOST": "ssh://me@box"})
    assert ssh_command(bare) == [
        "ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-l", "me", "--", "box",
        "docker system dial-stdio",
    ]  # fmt: skip
