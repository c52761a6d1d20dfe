"""The Service forwarder (reconciler/forwarder/forwarder.c) as a real process on 127.0.0.1.

It is compiled here through ``forwarder_build`` (into a fresh cache, so the build itself is
tested), then run on free ports; backends and clients are Python sockets and threads. No
Docker, nothing mocked. Timeouts are generous and no test asserts a speed: only that things
happen, and that the forwarder does not burn CPU while it waits.

It faces the network, so every test runs twice: against the static build the images hold,
and against an AddressSanitizer + UndefinedBehaviorSanitizer build of the same source
(``sanitized``), whose any report (a buffer overrun, a use after free, a leak, undefined
behaviour) fails the test that caused it. ``test_forwarder_fuzz.py`` fuzzes its arguments.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import resource
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.forwarder import build as forwarder_build

from .sanitized import SANITIZER_ENV, assert_no_sanitizer_report, sanitized_build

MiB = 1024 * 1024
HOST = "127.0.0.1"
WAIT = 10.0  # seconds: how long anything that should happen may take on a loaded machine


@pytest.fixture(scope="session", params=["static", "sanitized"])
def forwarder_program(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The forwarder compiled from source (never a prebuilt or cached binary), mode 755: the
    static build the images hold, or the sanitized build of the same source."""
    if request.param == "sanitized":
        return sanitized_build(tmp_path_factory.mktemp("asan"))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RECONCILER_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        env.delenv(forwarder_build.BINARY_ENV, raising=False)
        program = tmp_path_factory.mktemp("bin") / "forwarder"
        program.write_bytes(forwarder_build.forwarder_binary())
    program.chmod(0o755)
    return program


@dataclass
class Forwarder:
    proc: subprocess.Popen[bytes]
    log: Path

    def stderr(self) -> str:
        return self.log.read_text()

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))


class Lab:
    """Starts forwarders and backends for one test, and stops them all at its end."""

    def __init__(self, program: Path, tmp: Path) -> None:
        self.program = program
        self.tmp = tmp
        self.stack = contextlib.ExitStack()

    def forwarder(self, *args: str) -> Forwarder:
        """Runs the forwarder until it has printed one line per listener (it is listening)."""
        log = self.tmp / f"forwarder-{len(list(self.tmp.glob('forwarder-*')))}.log"
        with log.open("wb") as stderr:
            proc = subprocess.Popen(
                [str(self.program), *args],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env=SANITIZER_ENV,
            )
        self.stack.callback(assert_no_sanitizer_report, log)
        self.stack.callback(stop_process, proc)
        listeners = sum(1 for arg in args if "=" in arg)
        forwarder = Forwarder(proc, log)
        deadline = time.monotonic() + WAIT
        while forwarder.stderr().count("\n") < listeners:
            assert proc.poll() is None, f"forwarder exited: {forwarder.stderr()}"
            assert time.monotonic() < deadline, f"forwarder not listening: {forwarder.stderr()}"
            time.sleep(0.02)
        return forwarder

    def tcp_backend(self, handle: Callable[[socket.socket], object]) -> int:
        """A listening port; each connection is handled in its own thread, then closed."""
        server = socket.create_server((HOST, 0), backlog=1024)
        server.settimeout(0.1)
        stopped = threading.Event()

        def serve(conn: socket.socket) -> None:
            with conn, contextlib.suppress(OSError):
                conn.settimeout(WAIT * 3)
                handle(conn)

        def accept() -> None:
            while not stopped.is_set():
                try:
                    conn, _ = server.accept()
                except TimeoutError:
                    continue
                threading.Thread(target=serve, args=(conn,), daemon=True).start()

        self._run(accept, stopped, server)
        return int(server.getsockname()[1])

    def udp_backend(self, name: str, port: int = 0) -> int:
        """Answers each datagram with ``name|client port|datagram``."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((HOST, port))
        sock.settimeout(0.1)
        stopped = threading.Event()

        def answer() -> None:
            while not stopped.is_set():
                try:
                    data, peer = sock.recvfrom(65536)
                except TimeoutError:
                    continue
                sock.sendto(f"{name}|{peer[1]}|".encode() + data, peer)

        self._run(answer, stopped, sock)
        return int(sock.getsockname()[1])

    def _run(self, loop: Callable[[], None], stopped: threading.Event, sock: socket.socket) -> None:
        thread = threading.Thread(target=loop, daemon=True)
        thread.start()

        def stop() -> None:
            stopped.set()
            thread.join(WAIT)
            sock.close()

        self.stack.callback(stop)

    def refusing_tcp_port(self) -> int:
        """A port bound (so nobody else takes it) but not listening: connections are refused."""
        sock = self.stack.enter_context(socket.socket())
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGINT (an exit that runs the leak check), then SIGKILL if it does not go."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(WAIT)
        except subprocess.TimeoutExpired:
            proc.kill()
    proc.wait(WAIT)


@pytest.fixture
def lab(forwarder_program: Path, tmp_path: Path) -> Iterator[Lab]:
    started = Lab(forwarder_program, tmp_path)
    with started.stack:
        yield started


def free_port() -> int:
    """A port free for both TCP and UDP on every address: the forwarder's service port."""
    while True:
        with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            tcp.bind(("0.0.0.0", 0))
            port = int(tcp.getsockname()[1])
            try:
                udp.bind(("0.0.0.0", port))
            except OSError:
                continue
            return port


def closed_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def ep(port: int) -> str:
    return f"{HOST}:{port}"


def recv_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(MiB):
        chunks.append(chunk)
    return b"".join(chunks)


def recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, f"EOF after {len(data)} of {size} bytes"
        data += chunk
    return data


def digest_until_eof(sock: socket.socket) -> str:
    digest = hashlib.sha256()
    buffer = bytearray(MiB)
    while size := sock.recv_into(buffer):
        digest.update(buffer[:size])
    return digest.hexdigest()


def send_and_shut(sock: socket.socket, data: bytes) -> None:
    sock.sendall(data)
    sock.shutdown(socket.SHUT_WR)


def echo(conn: socket.socket) -> None:
    while data := conn.recv(MiB):
        conn.sendall(data)


def answer_with(name: str) -> Callable[[socket.socket], None]:
    return lambda conn: conn.sendall(name.encode())


def fetch(port: int) -> bytes:
    """What a connection to the forwarder receives before EOF (it sends nothing)."""
    with socket.create_connection((HOST, port), timeout=WAIT) as sock:
        return recv_all(sock)


def ask(port: int, data: bytes, sock: socket.socket | None = None) -> tuple[str, int, bytes]:
    """One datagram to the forwarder: (backend name, client port it saw, echoed data)."""
    with contextlib.ExitStack() as stack:
        if sock is None:
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        sock.settimeout(WAIT)
        sock.sendto(data, (HOST, port))
        reply, sender = sock.recvfrom(65536)
        assert sender == (HOST, port), "replies must come from the service port"
        name, client_port, echoed = reply.split(b"|", 2)
        return name.decode(), int(client_port), echoed


def no_answer(port: int, sock: socket.socket, timeout: float = 0.5) -> bool:
    sock.settimeout(timeout)
    sock.sendto(b"anyone?", (HOST, port))
    try:
        sock.recvfrom(65536)
    except TimeoutError:
        return True
    return False


def wait_until(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


# ---- TCP ----


def test_tcp_request_and_response(lab: Lab) -> None:
    backend = lab.tcp_backend(echo)
    port = free_port()
    forwarder = lab.forwarder(f"tcp:{port}={ep(backend)}")
    assert forwarder.stderr() == f"forwarder: tcp :{port} -> 1 endpoint\n"
    with socket.create_connection((HOST, port), timeout=WAIT) as sock:
        for request in (b"hello", b"second request on the same connection"):
            sock.sendall(request)
            assert recv_exact(sock, len(request)) == request


def test_tcp_connections_spread_over_endpoints(lab: Lab) -> None:
    backends = [lab.tcp_backend(answer_with(name)) for name in ("a", "b", "c")]
    port = free_port()
    forwarder = lab.forwarder(f"tcp:{port}={','.join(ep(b) for b in backends)}")
    assert f"tcp :{port} -> 3 endpoints" in forwarder.stderr()
    seen = [fetch(port) for _ in range(60)]
    assert set(seen) == {b"a", b"b", b"c"}


def test_tcp_falls_through_refusing_endpoints(lab: Lab) -> None:
    good = lab.tcp_backend(answer_with("good"))
    # whichever endpoint a connection starts at, it reaches the good one (wrapping around)
    endpoints = [lab.refusing_tcp_port(), good, lab.refusing_tcp_port()]
    port = free_port()
    lab.forwarder(f"tcp:{port}={','.join(ep(p) for p in endpoints)}")
    assert [fetch(port) for _ in range(20)] == [b"good"] * 20


def test_tcp_without_endpoints_or_with_all_refusing_closes_at_once(lab: Lab) -> None:
    empty, refused = free_port(), free_port()
    lab.forwarder(f"tcp:{empty}=", f"tcp:{refused}={ep(lab.refusing_tcp_port())}")
    for port in (empty, refused):
        for _ in range(5):
            with socket.create_connection((HOST, port), timeout=WAIT) as sock:
                assert sock.recv(100) == b""  # closed, not left hanging


def test_tcp_half_close_from_the_client(lab: Lab) -> None:
    def count_then_reply(conn: socket.socket) -> None:
        data = recv_all(conn)  # to EOF: the client's shutdown must come through
        conn.sendall(f"{len(data)} {hashlib.sha256(data).hexdigest()}".encode())

    backend = lab.tcp_backend(count_then_reply)
    port = free_port()
    lab.forwarder(f"tcp:{port}={ep(backend)}")
    payload = os.urandom(300_000)
    with socket.create_connection((HOST, port), timeout=WAIT) as sock:
        send_and_shut(sock, payload)
        reply = recv_all(sock)
    assert reply == f"{len(payload)} {hashlib.sha256(payload).hexdigest()}".encode()


def test_tcp_half_close_from_the_backend(lab: Lab) -> None:
    received: list[bytes] = []

    def greet_then_listen(conn: socket.socket) -> None:
        send_and_shut(conn, b"hello, then nothing more")
        received.append(recv_all(conn))

    backend = lab.tcp_backend(greet_then_listen)
    port = free_port()
    lab.forwarder(f"tcp:{port}={ep(backend)}")
    with socket.create_connection((HOST, port), timeout=WAIT) as sock:
        assert recv_all(sock) == b"hello, then nothing more"
        # the backend's EOF arrived; the other direction still carries data
        time.sleep(0.1)
        send_and_shut(sock, b"still talking")
        wait_until(lambda: bool(received), "the backend to read to EOF")
    assert received == [b"still talking"]


def test_tcp_large_transfer_both_ways_at_once_is_intact(lab: Lab) -> None:
    up, down = os.urandom(32 * MiB), os.urandom(32 * MiB)
    backend_got: list[str] = []

    def exchange(conn: socket.socket) -> None:
        sender = threading.Thread(target=send_and_shut, args=(conn, down))
        sender.start()
        backend_got.append(digest_until_eof(conn))
        sender.join()

    backend = lab.tcp_backend(exchange)
    port = free_port()
    lab.forwarder(f"tcp:{port}={ep(backend)}")
    with socket.create_connection((HOST, port), timeout=WAIT * 3) as sock:
        sender = threading.Thread(target=send_and_shut, args=(sock, up), daemon=True)
        sender.start()
        client_got = digest_until_eof(sock)
        sender.join(WAIT * 3)
    assert client_got == hashlib.sha256(down).hexdigest()
    wait_until(lambda: bool(backend_got), "the backend to read everything")
    assert backend_got == [hashlib.sha256(up).hexdigest()]


def test_tcp_200_concurrent_connections_and_no_fd_leak(lab: Lab) -> None:
    backend = lab.tcp_backend(echo)
    port = free_port()
    forwarder = lab.forwarder(f"tcp:{port}={ep(backend)}")
    idle_fds = forwarder.open_fds()
    with contextlib.ExitStack() as stack:
        clients = [
            stack.enter_context(socket.create_connection((HOST, port), timeout=WAIT))
            for _ in range(200)
        ]
        for i, client in enumerate(clients):
            client.sendall(f"client {i:03}".encode())
        for i, client in enumerate(clients):
            assert recv_exact(client, 10) == f"client {i:03}".encode()
        assert forwarder.open_fds() >= idle_fds + 400  # all open at once, through the forwarder
    wait_until(lambda: forwarder.open_fds() == idle_fds, "the forwarder to close every socket")


def test_tcp_connect_timeout_moves_on(lab: Lab, black_hole: int) -> None:
    good = lab.tcp_backend(answer_with("good"))
    only_hole, hole_then_good = free_port(), free_port()
    lab.forwarder(
        "-t",
        "1",
        f"tcp:{only_hole}={ep(black_hole)}",
        f"tcp:{hole_then_good}={ep(black_hole)},{ep(good)}",
    )
    started = time.monotonic()
    assert fetch(only_hole) == b""  # given up after the timeout: closed, not left hanging
    assert time.monotonic() - started >= 0.9
    # half of these start at the black hole and reach the good endpoint a second later
    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(lambda _: fetch(hole_then_good), range(8))) == [b"good"] * 8


def test_tcp_accept_out_of_fds_waits_without_spinning(lab: Lab) -> None:
    backend = lab.tcp_backend(echo)
    port = free_port()
    forwarder = lab.forwarder(f"tcp:{port}={ep(backend)}")
    # stdio, epoll, signalfd, listener and two connections: the third cannot be accepted
    resource.prlimit(forwarder.proc.pid, resource.RLIMIT_NOFILE, (10, 10))
    with contextlib.ExitStack() as stack:
        held = [
            stack.enter_context(socket.create_connection((HOST, port), timeout=WAIT))
            for _ in range(6)
        ]
        for client in held[:2]:
            client.sendall(b"ok")
            assert recv_exact(client, 2) == b"ok"
        before = forwarder.cpu_seconds()
        time.sleep(1.0)
        assert forwarder.cpu_seconds() - before < 0.3  # not a busy accept loop
    # the held connections are gone: the forwarder accepts again
    with socket.create_connection((HOST, port), timeout=WAIT) as sock:
        sock.sendall(b"again")
        assert recv_exact(sock, 5) == b"again"


# ---- UDP ----


def test_udp_echo_replies_from_the_service_port(lab: Lab) -> None:
    backend = lab.udp_backend("echo")
    port = free_port()
    forwarder = lab.forwarder(f"udp:{port}={ep(backend)}")
    assert forwarder.stderr() == f"forwarder: udp :{port} -> 1 endpoint\n"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        answers = [ask(port, f"datagram {i}".encode(), client) for i in range(3)]
    assert [a[2] for a in answers] == [b"datagram 0", b"datagram 1", b"datagram 2"]
    assert len({a[1] for a in answers}) == 1  # one session: one socket towards the backend
    big = os.urandom(60_000)
    assert ask(port, big)[2] == big


def test_udp_clients_spread_over_endpoints(lab: Lab) -> None:
    backends = [lab.udp_backend(name) for name in ("a", "b", "c")]
    port = free_port()
    lab.forwarder(f"udp:{port}={','.join(ep(b) for b in backends)}")
    # every ask comes from a fresh socket: a new client, a new random choice
    assert {ask(port, b"hi")[0] for _ in range(40)} == {"a", "b", "c"}


def test_udp_session_fails_over_refusing_endpoints(lab: Lab) -> None:
    good = lab.udp_backend("good")
    endpoints = [closed_udp_port(), good, closed_udp_port()]
    port = free_port()
    lab.forwarder(f"udp:{port}={','.join(ep(p) for p in endpoints)}")
    for i in range(20):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            assert ask(port, f"try {i}".encode(), client)[::2] == ("good", f"try {i}".encode())
            # the session stays on the endpoint that answered
            assert ask(port, b"again", client)[0] == "good"


def test_udp_datagram_refused_everywhere_is_dropped_and_the_session_starts_over(
    lab: Lab,
) -> None:
    first, second = closed_udp_port(), closed_udp_port()
    port = free_port()
    forwarder = lab.forwarder(f"udp:{port}={ep(first)},{ep(second)}")
    with contextlib.ExitStack() as stack:
        # several sessions: they end up on either endpoint after trying both
        clients = [
            stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM)) for _ in range(8)
        ]
        for client in clients:
            client.sendto(b"anyone?", (HOST, port))
        time.sleep(0.5)
        for client in clients:
            client.setblocking(False)
            with pytest.raises(BlockingIOError):
                client.recvfrom(65536)
        lab.udp_backend("late", port=second)
        # the same clients (same sessions): each datagram goes through every endpoint again
        for client in clients:
            assert ask(port, b"now?", client)[::2] == ("late", b"now?")
    assert forwarder.proc.poll() is None


def test_udp_idle_sessions_expire(lab: Lab) -> None:
    backend = lab.udp_backend("echo")
    port = free_port()
    lab.forwarder("-u", "1", f"udp:{port}={ep(backend)}")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        # traffic keeps the session: the backend keeps seeing the same session socket
        first = ask(port, b"1", client)[1]
        for _ in range(6):
            time.sleep(0.25)
            assert ask(port, b"busy", client)[1] == first
        # idle past -u: the session is closed, the next datagram opens a new one
        time.sleep(2.5)
        assert ask(port, b"back", client)[1] != first


def test_udp_without_endpoints_drops(lab: Lab) -> None:
    port = free_port()
    forwarder = lab.forwarder(f"udp:{port}=")
    assert forwarder.stderr() == f"forwarder: udp :{port} -> 0 endpoints\n"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        assert no_answer(port, client)
        assert no_answer(port, client)
    assert forwarder.proc.poll() is None


# ---- the process ----


def test_idle_forwarder_sleeps(lab: Lab) -> None:
    tcp_backend, udp_backend = lab.tcp_backend(echo), lab.udp_backend("echo")
    port = free_port()
    forwarder = lab.forwarder(f"tcp:{port}={ep(tcp_backend)}", f"udp:{port}={ep(udp_backend)}")
    with socket.create_connection((HOST, port), timeout=WAIT) as sock:
        sock.sendall(b"x")
        assert recv_exact(sock, 1) == b"x"
        ask(port, b"x")  # an open session: a deadline pending
        before = forwarder.cpu_seconds()
        time.sleep(1.0)
        assert forwarder.cpu_seconds() - before < 0.05


def test_sigint_exits_at_once(lab: Lab) -> None:
    backend = lab.tcp_backend(echo)
    port = free_port()
    forwarder = lab.forwarder(f"tcp:{port}={ep(backend)}", f"udp:{port}=")
    pid = forwarder.proc.pid
    status = Path(f"/proc/{pid}/status").read_text()
    assert "\nThreads:\t1\n" in status
    with socket.create_connection((HOST, port), timeout=WAIT) as sock:
        sock.sendall(b"busy")
        assert recv_exact(sock, 4) == b"busy"
        assert children(pid) == []
        forwarder.proc.send_signal(signal.SIGINT)
        assert forwarder.proc.wait(WAIT) == 0
        assert sock.recv(10) == b""  # the connection went with it


def test_sigterm_drains_the_connections_in_flight_then_exits(lab: Lab) -> None:
    backend = lab.tcp_backend(echo)
    port = free_port()
    forwarder = lab.forwarder("-d", "30", f"tcp:{port}={ep(backend)}", f"udp:{port}=")
    with socket.create_connection((HOST, port), timeout=WAIT) as sock:
        sock.sendall(b"before")
        assert recv_exact(sock, 6) == b"before"
        forwarder.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: "draining 1 connection" in forwarder.stderr(), "the drain to start")
        # the connection in flight still works; the listener is closed: no new connection
        sock.sendall(b"during the drain")
        assert recv_exact(sock, 16) == b"during the drain"
        with pytest.raises(OSError):
            socket.create_connection((HOST, port), timeout=WAIT).close()
        assert forwarder.proc.poll() is None
    # its last connection ended: it exits on its own, well before the drain's 30 s
    assert forwarder.proc.wait(WAIT) == 0


def test_sigterm_without_connections_exits_at_once(lab: Lab) -> None:
    port = free_port()
    forwarder = lab.forwarder(f"tcp:{port}={ep(lab.tcp_backend(echo))}")
    forwarder.proc.send_signal(signal.SIGTERM)
    assert forwarder.proc.wait(WAIT) == 0


def test_a_second_sigterm_or_the_drain_deadline_cuts_what_is_left(lab: Lab) -> None:
    backend = lab.tcp_backend(echo)
    port, other = free_port(), free_port()
    first = lab.forwarder("-d", "600", f"tcp:{port}={ep(backend)}")
    timed = lab.forwarder("-d", "1", f"tcp:{other}={ep(backend)}")
    with (
        socket.create_connection((HOST, port), timeout=WAIT) as held,
        socket.create_connection((HOST, other), timeout=WAIT) as idle,
    ):
        for sock in (held, idle):
            sock.sendall(b"x")
            assert recv_exact(sock, 1) == b"x"
        first.proc.send_signal(signal.SIGTERM)
        timed.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: "draining" in first.stderr(), "the drain to start")
        first.proc.send_signal(signal.SIGTERM)  # again: at once
        assert first.proc.wait(WAIT) == 0
        assert timed.proc.wait(WAIT) == 0  # one second of drain, then the rest is cut
        assert held.recv(10) == b"" and idle.recv(10) == b""


def test_an_idle_tcp_connection_is_closed_and_a_busy_one_kept(lab: Lab) -> None:
    backend = lab.tcp_backend(echo)
    port = free_port()
    forwarder = lab.forwarder("-i", "1", f"tcp:{port}={ep(backend)}")
    before = forwarder.open_fds()
    with (
        socket.create_connection((HOST, port), timeout=WAIT) as busy,
        socket.create_connection((HOST, port), timeout=WAIT) as idle,
    ):
        idle.sendall(b"i")
        assert recv_exact(idle, 1) == b"i"
        for _ in range(8):  # two seconds of traffic, a byte every quarter of a second
            busy.sendall(b"b")
            assert recv_exact(busy, 1) == b"b"
            time.sleep(0.25)
        assert idle.recv(10) == b""  # closed by the forwarder after a second of silence
        busy.sendall(b"still")
        assert recv_exact(busy, 5) == b"still"
        # the idle one's two descriptors (client and backend) are back; the busy one's held
        wait_until(lambda: forwarder.open_fds() == before + 2, "the idle descriptors to close")


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if f"\nPPid:\t{pid}\n" in (entry / "status").read_text():
                    found.append(int(entry.name))
    return found


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["tcp:x="], "tcp:x="),
        (["sctp:1="], "sctp"),
        (["tcp:80=1.2.3:4"], "1.2.3:4"),
        (["tcp:80=1.2.3.4:5,"], "tcp:80=1.2.3.4:5,"),
        (["tcp:80=1.2.3.4:0"], "1.2.3.4:0"),
        (["tcp:80"], "tcp:80"),
        (["tcp:80=", "tcp:80="], "tcp:80="),
        (["-t", "soon", "tcp:80="], "soon"),
        (["-z", "tcp:80="], "-z"),
        ([], "usage"),
    ],
)
def test_bad_arguments_exit_2_naming_them(
    forwarder_program: Path, args: list[str], named: str
) -> None:
    result = subprocess.run(
        [str(forwarder_program), *args], capture_output=True, text=True, timeout=WAIT
    )
    assert result.returncode == 2
    assert result.stderr.startswith("forwarder: ")
    assert result.stderr.count("\n") == 1
    assert named in result.stderr


def test_port_in_use_exits_1(lab: Lab) -> None:
    with socket.create_server(("0.0.0.0", 0)) as taken:
        port = int(taken.getsockname()[1])
        proc = subprocess.run(
            [str(lab.program), f"udp:{port}=", f"tcp:{port}="],
            capture_output=True,
            text=True,
            timeout=WAIT,
        )
    assert proc.returncode == 1
    assert f"forwarder: tcp :{port}: " in proc.stderr
