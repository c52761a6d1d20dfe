"""A simulated Docker engine: the Engine API's HTTP routes that the reconciler uses, in memory.

Why: ten thousand real containers do not fit on this machine, yet the reconciler's cost at
that size (its list call parsed, its desired state, its plan, its memory over many passes)
must be measured. The reconciler connects to this engine exactly as to a real one
(``tcp://127.0.0.1:PORT`` in a hosts file, docker-py's HTTP client, the same API version):
the code under test does not know. It is a fake *engine*, not a mock of the SDK.

What it answers: ``/_ping``, ``/version``, ``GET /containers/json`` (with ``all`` and
``label`` filters, entries shaped as dockerd lists them), ``/events`` (a chunked stream of
``die``/``destroy`` events for the containers it stops and removes), container create,
start, stop, kill, remove and inspect, image inspect (every image is present), networks and
volumes (list, create, remove). Containers can be seeded from desired pods with the
reconciler's own translation (``engine.translate``), so an in-sync state of any size is one
call away.
"""

from __future__ import annotations

import itertools
import json
import queue
import threading
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from reconciler.core.model import DesiredPod
from reconciler.engine import translate as T

API_VERSION = "1.41"


def _matches(labels: Mapping[str, str], wanted: Iterable[str]) -> bool:
    for selector in wanted:
        key, sep, value = selector.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


class FakeEngine:
    """The engine's state and its HTTP server on 127.0.0.1 (``url`` once started)."""

    def __init__(self, name: str = "fake") -> None:
        self.name = name
        self.containers: dict[str, dict[str, Any]] = {}  # id -> list entry (+ "_inspect")
        self.names: dict[str, str] = {}  # name -> id: found as dockerd finds it, not by a scan
        self.networks: dict[str, dict[str, Any]] = {}
        self.volumes: dict[str, dict[str, Any]] = {}
        self.requests: dict[str, int] = {}  # "GET /containers/json" -> count
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._listeners: list[queue.Queue[bytes | None]] = []
        self._server: ThreadingHTTPServer | None = None

    # -- state -------------------------------------------------------------------------------
    def add(
        self,
        name: str,
        image: str,
        labels: Mapping[str, str],
        state: str = "running",
        network: str = "",
        address: str = "",
    ) -> str:
        with self._lock:
            container_id = f"{next(self._ids):064x}"
            networks = {network: {"IPAddress": address}} if network else {}
            self.names[name] = container_id
            self.containers[container_id] = {
                "Id": container_id,
                "Names": [f"/{name}"],
                "Image": image,
                "ImageID": "sha256:" + "0" * 64,
                "Command": "/bin/sleep 2147483647",
                "Created": 1_700_000_000,
                "Ports": [],
                "Labels": dict(labels),
                "State": state,
                "Status": "Up 2 hours" if state == "running" else "Created",
                "HostConfig": {"NetworkMode": network or "default"},
                "NetworkSettings": {"Networks": networks},
                "Mounts": [],
            }
            return container_id

    def seed(self, pods: Iterable[DesiredPod], instance: str, revision: str = "") -> int:
        """Every container of ``pods`` as the real engine would list it after an apply."""
        count = 0
        for index, pod in enumerate(pods):
            network = pod.network.name if pod.network is not None else ""
            address = f"10.{(index >> 16) & 255}.{(index >> 8) & 255}.{index & 255}"
            for container in pod.containers:
                labels = T.container_labels(pod, container, instance, revision)
                self.add(
                    container.docker_name,
                    container.image,
                    labels,
                    "running",
                    network,
                    address if container is pod.containers[0] else "",
                )
                count += 1
        return count

    def _emit(self, action: str, entry: Mapping[str, Any]) -> None:
        event = {
            "Type": "container",
            "Action": action,
            "status": action,
            "id": entry["Id"],
            "Actor": {
                "ID": entry["Id"],
                "Attributes": {**entry["Labels"], "name": entry["Names"][0][1:]},
            },
            "time": 1_700_000_000,
        }
        data = (json.dumps(event) + "\n").encode()
        for listener in list(self._listeners):
            listener.put(data)

    # -- server ------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        return f"tcp://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeEngine:
        engine = self

        class Handler(_Handler):
            pass

        Handler.engine = engine
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, name=f"fake-{self.name}", daemon=True
        ).start()
        return self

    def stop(self) -> None:
        for listener in list(self._listeners):
            listener.put(None)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeEngine:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    engine: FakeEngine
    protocol_version = "HTTP/1.1"
    # headers and body leave in separate writes: without this, Nagle's algorithm holds the
    # body back for the client's delayed ACK (~40 ms a request on a kept-alive connection,
    # which no real engine costs)
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    # routing -----------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    def do_HEAD(self) -> None:
        self._route("HEAD")

    def _route(self, method: str) -> None:
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        if path.startswith(f"/v{API_VERSION}"):
            path = path[len(API_VERSION) + 2 :]
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        segments = [s for s in path.split("/") if s]
        key = f"{method} /" + "/".join(
            s if i == 0 or s in ("json", "create", "start", "stop", "kill") else "*"
            for i, s in enumerate(segments)
        )
        engine = self.engine
        with engine._lock:
            engine.requests[key] = engine.requests.get(key, 0) + 1
        body = self._body()
        try:
            if path == "/_ping":
                return self._send(200, b"OK", "text/plain")
            if path == "/version":
                return self._json(200, {"Version": "20.10.24-fake", "ApiVersion": API_VERSION})
            if path == "/events":
                return self._events()
            if segments[:1] == ["containers"]:
                return self._containers(method, segments[1:], query, body)
            if segments[:1] == ["images"]:
                return self._json(200, {"Id": "sha256:" + "0" * 64, "RepoTags": []})
            if segments[:1] == ["networks"]:
                return self._networks(method, segments[1:], body)
            if segments[:1] == ["volumes"]:
                return self._volumes(method, segments[1:], body)
        except KeyError:
            return self._json(404, {"message": f"No such object: {path}"})
        return self._json(404, {"message": f"page not found: {method} {path}"})

    # containers ----------------------------------------------------------------------------
    def _containers(
        self, method: str, rest: list[str], query: Mapping[str, str], body: Any
    ) -> None:
        engine = self.engine
        if method == "GET" and rest == ["json"]:
            filters = json.loads(query.get("filters", "{}"))
            wanted = filters.get("label", [])
            listed_all = query.get("all") in ("1", "true", "True")
            with engine._lock:
                items = [
                    {k: v for k, v in c.items() if not k.startswith("_")}
                    for c in engine.containers.values()
                    if _matches(c["Labels"], wanted) and (listed_all or c["State"] == "running")
                ]
            return self._json(200, items)
        if method == "POST" and rest == ["create"]:
            name = query.get("name", "")
            with engine._lock:
                taken = name in engine.names
            if taken:
                return self._json(
                    409, {"message": f'Conflict. The container name "/{name}" is already in use'}
                )
            network = (body.get("HostConfig") or {}).get("NetworkMode", "")
            container_id = engine.add(
                name,
                body.get("Image", ""),
                body.get("Labels") or {},
                "created",
                network if "container:" not in network else "",
            )
            engine.containers[container_id]["_inspect"] = body
            return self._json(201, {"Id": container_id, "Warnings": []})
        entry = self._find(rest[0])
        action = rest[1] if len(rest) > 1 else ""
        if method == "GET" and action == "json":
            config = entry.get("_inspect") or {}
            running = entry["State"] == "running"
            return self._json(
                200,
                {
                    "Id": entry["Id"],
                    "Name": entry["Names"][0],
                    "RestartCount": 0,
                    "State": {
                        "Status": entry["State"],
                        "Running": running,
                        "Restarting": False,
                        "ExitCode": 0 if running else 137,
                    },
                    "Config": {
                        "Labels": entry["Labels"],
                        "Image": entry["Image"],
                        "Env": config.get("Env") or [],
                    },
                },
            )
        if method == "POST" and action == "start":
            entry["State"], entry["Status"] = "running", "Up Less than a second"
            return self._send(204, b"")
        if method == "POST" and action in ("stop", "kill"):
            entry["State"], entry["Status"] = "exited", "Exited (137) Less than a second ago"
            self.engine._emit("die", entry)
            return self._send(204, b"")
        if method == "DELETE" and not action:
            with engine._lock:
                engine.containers.pop(entry["Id"], None)
                engine.names.pop(entry["Names"][0][1:], None)
            self.engine._emit("destroy", entry)
            return self._send(204, b"")
        return self._json(404, {"message": "not implemented"})

    def _find(self, ref: str) -> dict[str, Any]:
        with self.engine._lock:
            found = self.engine.containers.get(ref)
            if found is None and ref in self.engine.names:
                found = self.engine.containers.get(self.engine.names[ref])
            if found is not None:
                return found
            for entry in self.engine.containers.values():  # an id prefix
                if entry["Names"] == [f"/{ref}"] or entry["Id"].startswith(ref):
                    return entry
        raise KeyError(ref)

    # networks and volumes --------------------------------------------------------------------
    def _networks(self, method: str, rest: list[str], body: Any) -> None:
        engine = self.engine
        if method == "GET" and not rest:
            return self._json(200, list(engine.networks.values()))
        if method == "POST" and rest == ["create"]:
            name = body["Name"]
            engine.networks[name] = {"Name": name, "Id": name, "Labels": body.get("Labels") or {}}
            return self._json(201, {"Id": name})
        if method == "DELETE" and rest:
            engine.networks.pop(rest[0])
            return self._send(204, b"")
        return self._json(404, {"message": "not implemented"})

    def _volumes(self, method: str, rest: list[str], body: Any) -> None:
        engine = self.engine
        if method == "GET" and not rest:
            return self._json(200, {"Volumes": list(engine.volumes.values()), "Warnings": []})
        if method == "POST" and rest == ["create"]:
            engine.volumes[body["Name"]] = {"Name": body["Name"], "Labels": body.get("Labels")}
            return self._json(201, engine.volumes[body["Name"]])
        if method == "DELETE" and rest:
            engine.volumes.pop(rest[0])
            return self._send(204, b"")
        return self._json(404, {"message": "not implemented"})

    # events -------------------------------------------------------------------------------
    def _events(self) -> None:
        listener: queue.Queue[bytes | None] = queue.Queue()
        self.engine._listeners.append(listener)
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            while (data := listener.get()) is not None:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass
        finally:
            self.engine._listeners.remove(listener)
            self.close_connection = True

    # plumbing ----------------------------------------------------------------------------------
    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        if not length:
            return {}
        raw = self.rfile.read(length)
        try:
            return json.loads(raw)
        except ValueError:
            return {}

    def _json(self, status: int, value: Any) -> None:
        self._send(status, json.dumps(value).encode(), "application/json")

    def _send(self, status: int, data: bytes, content_type: str = "application/json") -> None:
        self.send_response(HTTPStatus(status))
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Api-Version", API_VERSION)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
