"""Remote engines the way people secure them: TLS with client certificates, and ssh.

On the namespace hosts of ``scripts/testhosts``: h1's dockerd restarted with
``--tlsverify`` and certificates made here with ``openssl`` (a CA, a server certificate for
h1's address, a client certificate); and an sshd started here in h2's namespace, key
authentication only, whose sessions reach h2's engine (``docker system dial-stdio``), with
the client checking its host key against a ``known_hosts`` file. The wrong CA, a missing
client certificate and an unknown host key are each a clear error naming the host.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import Rig, wait_for
from .testhosts import TestHosts, test_hosts

__all__ = ["test_hosts"]  # the fixture is imported to be found, not called

pytestmark = pytest.mark.slow

POD = """\
apiVersion: v1
kind: Pod
metadata: {name: remote, labels: {app: remote}}
spec:
  containers:
    - name: web
      image: sample/frontend:1.0
      command: ["sh", "-c", "exec sleep 3600"]
"""
SSH_PORT = 2222


def openssl(*args: str, cwd: Path) -> None:
    completed = subprocess.run(
        ["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 0, completed.stderr


def make_ca(directory: Path, name: str) -> None:
    openssl("genrsa", "-out", f"{name}-key.pem", "2048", cwd=directory)
    openssl(
        "req", "-x509", "-new", "-key", f"{name}-key.pem", "-days", "2", "-subj", f"/CN={name}",
        "-out", f"{name}.pem", cwd=directory,
    )  # fmt: skip


def sign(directory: Path, ca: str, name: str, subject: str, extensions: str) -> None:
    openssl("genrsa", "-out", f"{name}-key.pem", "2048", cwd=directory)
    openssl(
        "req", "-new", "-key", f"{name}-key.pem", "-subj", subject, "-out", f"{name}.csr",
        cwd=directory,
    )  # fmt: skip
    (directory / f"{name}.ext").write_text(extensions)
    openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}-key.pem",
        "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}-cert.pem",
        cwd=directory,
    )  # fmt: skip


@pytest.fixture
def tls_host(test_hosts: TestHosts, tmp_path: Path) -> Iterator[tuple[TestHosts, Path]]:
    """h1 with TLS only, its certificates in ``tmp_path/certs`` (and a foreign CA)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    certs = tmp_path / "certs"
    certs.mkdir()
    address = test_hosts.address("h1")
    make_ca(certs, "ca")
    make_ca(certs, "other-ca")
    sign(certs, "ca", "server", "/CN=h1",
         f"subjectAltName=IP:{address}\nextendedKeyUsage=serverAuth\n")  # fmt: skip
    sign(certs, "ca", "client", "/CN=reconciler", "extendedKeyUsage=clientAuth\n")
    # the names dockerd and the docker CLI look for
    shutil.copy(certs / "client-cert.pem", certs / "cert.pem")
    shutil.copy(certs / "client-key.pem", certs / "key.pem")
    test_hosts.tls("h1", certs)
    try:
        yield test_hosts, certs
    finally:
        test_hosts.tls("h1", None)


def hosts_file(path: Path, entry: Mapping[str, Any]) -> Path:
    path.write_text(yaml.safe_dump({"hosts": [entry]}))
    return path


def test_tls_hosts_need_the_right_ca_and_a_client_certificate(
    tls_host: tuple[TestHosts, Path], make_rig: Callable[[], Rig]
) -> None:
    hosts, certs = tls_host
    address = hosts.address("h1")
    rig = make_rig()
    rig.write("pod.yaml", POD)
    entry = {"name": "h1", "url": f"tcp://{address}:2376", "address": address}
    # relative paths: from the hosts file's directory, whatever the working directory
    tls = {"ca": "ca.pem", "cert": "cert.pem", "key": "key.pem"}
    good = hosts_file(certs / "hosts.yaml", {**entry, "tls": tls})
    applied = rig.apply("--hosts", good)
    assert applied.exit_code == 0, applied.output
    assert rig.cli("get", "pods", "--hosts", good, "--instance", rig.instance).exit_code == 0
    assert rig.diff("--hosts", good).exit_code == 0

    wrong_ca = hosts_file(
        certs / "wrong-ca.yaml",
        {**entry, "tls": {"ca": "other-ca.pem", "cert": "cert.pem", "key": "key.pem"}},
    )
    result = rig.diff("--hosts", wrong_ca)
    assert result.exit_code == 2, result.output
    assert f"host h1 (tcp://{address}:2376): TLS: the engine's certificate is not trusted by" in (
        result.output
    )
    assert "other-ca.pem" in result.output and "Traceback" not in result.output

    no_client_cert = hosts_file(certs / "no-cert.yaml", {**entry, "tls": {"ca": "ca.pem"}})
    result = rig.diff("--hosts", no_client_cert)
    assert result.exit_code == 2, result.output
    assert f"host h1 (tcp://{address}:2376): TLS: the engine refused the handshake" in result.output
    assert "client certificate" in result.output

    plain = hosts_file(certs / "plain.yaml", {**entry, "url": f"tcp://{address}:2376"})
    result = rig.diff("--hosts", plain)
    assert result.exit_code == 2 and "host h1" in result.output, result.output
    assert rig.down("--hosts", good, "--yes").exit_code == 0


def sshd_program() -> str:
    found = shutil.which("sshd") or ("/usr/sbin/sshd" if Path("/usr/sbin/sshd").exists() else None)
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get") and Path("/usr/sbin/policy-rc.d").exists():
        # policy-rc.d (exit 101) keeps the package from starting an sshd of its own
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "openssh-server"],
            env=env, capture_output=True, timeout=600, check=False,
        )  # fmt: skip
        if Path("/usr/sbin/sshd").exists():
            return "/usr/sbin/sshd"
    message = "no sshd (apt-get install openssh-server)"
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def keygen(path: Path) -> str:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)],
        capture_output=True, timeout=30, check=True,
    )  # fmt: skip
    return (path.parent / f"{path.name}.pub").read_text().strip()


@pytest.fixture
def ssh_host(test_hosts: TestHosts, tmp_path: Path) -> Iterator[tuple[TestHosts, Path]]:
    """An sshd in h2's namespace on port 2222; keys and known_hosts in ``tmp_path/ssh``."""
    program = sshd_program()
    if shutil.which("ssh") is None:
        pytest.skip("no ssh client")
    work = tmp_path / "ssh"
    work.mkdir()
    address = test_hosts.address("h2")
    host_key = keygen(work / "host_key")
    client_key = keygen(work / "id_ed25519")
    keygen(work / "impostor_key")
    (work / "authorized_keys").write_text(client_key + "\n")
    (work / "known_hosts").write_text(f"[{address}]:{SSH_PORT} {host_key}\n")
    socket_line = subprocess.run(
        test_hosts.command("h2", "sh", "-c", "echo $DOCKER_HOST"),
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout.strip()  # fmt: skip
    (work / "sshd_config").write_text(
        f"Port {SSH_PORT}\nListenAddress {address}\nHostKey {work}/host_key\n"
        f"PidFile {work}/sshd.pid\nAuthorizedKeysFile {work}/authorized_keys\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        "PermitRootLogin prohibit-password\nStrictModes no\n"
        f"SetEnv DOCKER_HOST={socket_line}\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
    server = subprocess.Popen(
        test_hosts.command("h2", program, "-D", "-e", "-f", str(work / "sshd_config")),
        stdout=subprocess.DEVNULL,
        stderr=(work / "sshd.log").open("w"),
    )
    try:

        def listening() -> bool:
            assert server.poll() is None, (work / "sshd.log").read_text()
            probe = subprocess.run(
                ["ssh-keyscan", "-p", str(SSH_PORT), address],
                capture_output=True, text=True, timeout=10, check=False,
            )  # fmt: skip
            return "ssh-ed25519" in probe.stdout

        wait_for(listening, timeout=30, what="sshd in h2")
        yield test_hosts, work
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


def test_ssh_hosts_use_keys_and_check_the_host_key(
    ssh_host: tuple[TestHosts, Path], make_rig: Callable[[], Rig]
) -> None:
    hosts, work = ssh_host
    address = hosts.address("h2")
    rig = make_rig()
    rig.write("pod.yaml", POD)
    entry = {
        "name": "h2",
        "url": f"ssh://root@{address}:{SSH_PORT}",
        "address": address,
        "ssh": {"identity": "id_ed25519", "known_hosts": "known_hosts"},
    }
    good = hosts_file(work / "hosts.yaml", entry)
    started = time.monotonic()
    applied = rig.apply("--hosts", good)
    assert applied.exit_code == 0, applied.output
    # really on h2's engine, reached through ssh
    api = hosts.api("h2")
    mine = api.containers(filters={"label": f"io.reconciler.instance={rig.instance}"})
    names = [c["Names"][0] for c in mine]
    assert names and all(rig.instance in n for n in names), names
    assert rig.diff("--hosts", good).exit_code == 0
    print(f"\nssh host: apply + diff in {time.monotonic() - started:.1f} s")

    # a known_hosts that names another key for the host: refused, said so
    impostor = (work / "impostor_key.pub").read_text().strip()
    (work / "wrong_known_hosts").write_text(f"[{address}]:{SSH_PORT} {impostor}\n")
    wrong = hosts_file(
        work / "wrong.yaml",
        {**entry, "ssh": {"identity": "id_ed25519", "known_hosts": "wrong_known_hosts"}},
    )
    result = rig.diff("--hosts", wrong)
    assert result.exit_code == 2, result.output
    url = f"ssh://root@{address}:{SSH_PORT}"
    assert f"host h2: the Docker engine at {url} does not answer: ssh:" in result.output
    assert "Host key verification failed" in result.output
    # a key the server does not know
    stranger = hosts_file(
        work / "stranger.yaml",
        {**entry, "ssh": {"identity": "impostor_key", "known_hosts": "known_hosts"}},
    )
    result = rig.diff("--hosts", stranger)
    assert result.exit_code == 2, result.output
    assert "Permission denied" in result.output
    assert rig.down("--hosts", good, "--yes").exit_code == 0
    api.close()
