"""The HTTP side under slow clients: ``/healthz`` while hundreds of connections stall.

Run from the repository root::

    .venv/bin/python -m bench.slowclients              # 500 slow clients, 300 probes
    .venv/bin/python -m bench.slowclients --clients 900 --json

What it does:

1. Starts the service's HTTP server (``daemon.http.server.serve``) in a process of its own,
   with a status board holding a world of ``--pods`` pods (so that ``/ui/view``, the page's
   data, has a realistic size).
2. **Floor**: ``--probes`` sequential ``GET /healthz`` on a quiet server; their latency.
3. **Loaded**: ``--clients`` connections that each send a request line and then one header
   line a second, never finishing (slowloris), and ``--idle`` more that send nothing; while
   all of them hold their connections, the same ``GET /healthz`` probes again, and ten
   ``GET /ui/view``. The server's threads and resident memory are read from ``/proc``.
4. **Reaped**: how many of the stalled connections the server closed by itself after its
   per-exchange deadline (``daemon.http.limits.REQUEST_DEADLINE``), and when the last one
   went (it waits up to ten seconds past the deadline).

Targets: loaded p99 of ``/healthz`` under 100 ms (the issue's bound, absolute: read it on a
quiet machine), loaded p50 within 3x the floor's p50, and every stalled connection closed by
the server. A missed target still exits 0; 1 means no figure came out.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SERVER = r"""
import sys, time
from reconciler.daemon.http.metrics import Metrics
from reconciler.daemon.http.server import serve
from reconciler.daemon.http.status import StatusBoard
board = StatusBoard("https://example.com/ops/manifests.git", "main")
pods = int(sys.argv[1])
board.overview.set_world({
    "hosts": [{"name": f"h{i}", "reachable": True, "pods": pods // 3} for i in range(3)],
    "workloads": [],
    "pods": [
        {"namespace": "default", "name": f"web-{i}", "host": f"h{i % 3}", "ready": 1,
         "containers": 1, "status": "Running", "restarts": 0, "created": time.time() - 60,
         "images": ["web:1"], "owner": "ReplicationController/web",
         "source": "web/rc.yaml:1:1", "revision": "0123456789ab", "ip": "10.64.0.2",
         "labels": {"app": "web"}}
        for i in range(pods)
    ],
    "services": [],
})
server = serve("127.0.0.1", 0, board, Metrics(), webhook_secret=None,
               on_trigger=lambda r: None, on_suspend=lambda s: None)
print(server.port, flush=True)
sys.stdin.read()
server.stop()
"""


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def get(port: int, path: str) -> float:
    """Seconds for one full request: connect, send, read the whole answer."""
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    if not data.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"GET {path}: {data[:80]!r}")
    return time.perf_counter() - started


def probes(port: int, count: int) -> list[float]:
    return [get(port, "/healthz") for _ in range(count)]


class SlowClients:
    """Connections that stall: a request line, then a header line a second (or nothing)."""

    def __init__(self, port: int, slow: int, idle: int) -> None:
        self.sockets: list[socket.socket] = []
        for index in range(slow + idle):
            conn = socket.create_connection(("127.0.0.1", port), timeout=10)
            if index < slow:
                conn.sendall(b"GET /status HTTP/1.1\r\nHost: bench\r\n")
            self.sockets.append(conn)
        self.slow = self.sockets[:slow]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._drip, daemon=True)
        self.thread.start()

    def _drip(self) -> None:
        while not self.stop.wait(1.0):
            for conn in self.slow:
                with contextlib.suppress(OSError):
                    conn.sendall(b"X-Slow: 1\r\n")

    def closed_by_server(self) -> int:
        """Connections the server has closed (a read returns end of file or fails)."""
        closed = 0
        for conn in self.sockets:
            conn.setblocking(False)
            try:
                data = conn.recv(65536)
                closed += data == b"" or data.startswith(b"HTTP/1.1 4")
            except BlockingIOError:
                pass
            except OSError:
                closed += 1
        return closed

    def close(self) -> None:
        self.stop.set()
        for conn in self.sockets:
            with contextlib.suppress(OSError):
                conn.close()


def proc_status(pid: int) -> dict[str, int]:
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("Threads", "VmRSS"):
            found[key] = int(value.split()[0])
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=500, help="slow clients (slowloris)")
    parser.add_argument("--idle", type=int, default=0, help="connections that send nothing")
    parser.add_argument("--probes", type=int, default=300)
    parser.add_argument("--pods", type=int, default=300, help="pods in the page's data")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    from reconciler.daemon.http.limits import REQUEST_DEADLINE

    load_before = os.getloadavg()[0]
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(args.pods)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        get(port, "/healthz")
        floor = probes(port, args.probes)
        quiet = proc_status(server.pid)
        began = time.monotonic()
        slow = SlowClients(port, args.clients, args.idle)
        opened = time.monotonic() - began
        time.sleep(1.0)
        loaded = probes(port, args.probes)
        views = [get(port, "/ui/view") for _ in range(10)]
        busy = proc_status(server.pid)
        remaining = REQUEST_DEADLINE - (time.monotonic() - began)
        time.sleep(max(0.0, remaining))
        reaped = 0
        while time.monotonic() - began < REQUEST_DEADLINE + 10:
            reaped = max(reaped, slow.closed_by_server())
            if reaped == args.clients + args.idle:
                break
            time.sleep(0.25)
        all_closed = time.monotonic() - began
        slow.close()
        time.sleep(0.5)
        after = proc_status(server.pid)
    except (OSError, RuntimeError, ValueError) as exc:
        print(f"no figure: {exc}", file=sys.stderr)
        return 1
    finally:
        with contextlib.suppress(OSError):
            if server.stdin is not None:
                server.stdin.close()
        try:
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            server.kill()
    held = args.clients + args.idle
    result = {
        "clients": args.clients,
        "idle": args.idle,
        "floor_p50_ms": percentile(floor, 0.5) * 1000,
        "floor_p99_ms": percentile(floor, 0.99) * 1000,
        "loaded_p50_ms": percentile(loaded, 0.5) * 1000,
        "loaded_p99_ms": percentile(loaded, 0.99) * 1000,
        "loaded_max_ms": max(loaded) * 1000,
        "view_p50_ms": percentile(views, 0.5) * 1000,
        "open_seconds": opened,
        "all_closed_seconds": all_closed,
        "threads_quiet": quiet.get("Threads", 0),
        "threads_loaded": busy.get("Threads", 0),
        "threads_after": after.get("Threads", 0),
        "rss_quiet_kib": quiet.get("VmRSS", 0),
        "rss_loaded_kib": busy.get("VmRSS", 0),
        "reaped": reaped,
        "held": held,
        "load": [load_before, os.getloadavg()[0]],
    }
    ratio = result["loaded_p50_ms"] / max(result["floor_p50_ms"], 1e-6)
    targets = [
        ("loaded /healthz p99 < 100 ms", result["loaded_p99_ms"] < 100),
        ("loaded p50 <= 3x floor p50", ratio <= 3),
        (f"server closed {held} stalled connections itself", reaped == held),
    ]
    print(f"/healthz with {args.clients} slow + {args.idle} idle clients holding connections")
    print(f"  floor   p50 {result['floor_p50_ms']:.2f} ms   p99 {result['floor_p99_ms']:.2f} ms")
    print(
        f"  loaded  p50 {result['loaded_p50_ms']:.2f} ms   p99 {result['loaded_p99_ms']:.2f} ms"
        f"   max {result['loaded_max_ms']:.2f} ms   (ratio p50 {ratio:.2f}x)"
    )
    print(f"  /ui/view ({args.pods} pods) p50 {result['view_p50_ms']:.2f} ms while loaded")
    print(
        f"  threads {result['threads_quiet']} -> {result['threads_loaded']} -> "
        f"{result['threads_after']}; RSS {result['rss_quiet_kib'] / 1024:.1f} -> "
        f"{result['rss_loaded_kib'] / 1024:.1f} MiB"
    )
    print(
        f"  stalled connections closed by the server: {reaped} of {held}, the last "
        f"{all_closed:.1f} s after the first was opened (deadline {REQUEST_DEADLINE:.0f} s, "
        f"opening all took {opened:.1f} s)"
    )
    print(f"  load average {result['load'][0]:.2f} -> {result['load'][1]:.2f}")
    for name, ok in targets:
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
