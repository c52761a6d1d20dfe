"""The status page's view model (``render.statuspage``) and ``reconciler status``'s text
(``render.statustext``), from ``/status`` snapshots; and the page's HTTP answers. Pure
functions on values, and a real server on 127.0.0.1 for the HTTP part. No mocks.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from click.testing import CliRunner

from reconciler.cli import cli
from reconciler.daemon.http.page import POLICY
from reconciler.daemon.http.status import StatusBoard
from reconciler.render.statuspage import TONES, page_view
from reconciler.render.statustext import age, status_lines

from .client import Start, request

SCRIPT = "<script>alert(1)</script>"


def populated(board: StatusBoard) -> StatusBoard:
    """A board as a service leaves it: a sync, hosts, a world, a held revision, events."""
    board.set_source("https://bot:tok3n-secret-1@git.example.com/ops/m.git", "main", "prod")
    board.sync_started("aaaaaaaaaaaa")
    board.set_host("h1", True)
    board.set_host("h2", False, "connection refused")
    board.record_actions(ok=9, failed=0)
    board.sync_finished(ok=True, duration=0.84, applied_revision="aaaaaaaaaaaa")
    board.overview.set_instance("prod")
    board.overview.set_world(
        {
            "hosts": [
                {
                    "name": "h1",
                    "reachable": True,
                    "engine": "20.10.24",
                    "pods": 2,
                    "forwarders": 1,
                    "cpu": "0",
                    "memory": "0",
                    "address": "10.0.0.1",
                    "error": "",
                },
                {
                    "name": "h2",
                    "reachable": False,
                    "engine": "",
                    "pods": 0,
                    "forwarders": 0,
                    "cpu": "0",
                    "memory": "0",
                    "address": "10.0.0.2",
                    "error": "connection refused",
                },
            ],
            "workloads": [
                {
                    "kind": "ReplicationController",
                    "namespace": "default",
                    "name": "web",
                    "desired": 2,
                    "current": 2,
                    "ready": 1,
                    "updated": 1,
                    "rollout": "failed",
                    "rollout_error": "recreate pod web-0 on h1: ErrImagePull",
                    "hosts": ["h1"],
                    "source": f"apps/{SCRIPT}.yaml:1:1",
                    "labels": {"app": "web"},
                    "annotations": {"owner": SCRIPT},
                    "pod_labels": {"app": "web"},
                },
            ],
            "pods": [
                {
                    "namespace": "default",
                    "name": "web-0",
                    "host": "h1",
                    "ready": 1,
                    "containers": 1,
                    "status": "Running",
                    "restarts": 2,
                    "created": time.time() - 90,
                    "images": ["web:1"],
                    "owner": "ReplicationController/web",
                    "source": "apps/web.yaml:12:7",
                    "revision": "aaaaaaaaaaaa",
                    "ip": "10.64.0.2",
                    "labels": {"app": "web"},
                },
            ],
            "services": [
                {
                    "namespace": "default",
                    "name": "web",
                    "type": "ClusterIP",
                    "cluster_ip": "10.64.8.1",
                    "ports": ["80/TCP"],
                    "selector": {"app": "web"},
                    "pods": 1,
                    "ready_pods": 1,
                    "endpoints": {"h1": ["10.64.0.2:8080"]},
                    "source": "apps/svc.yaml:1:1",
                    "labels": {},
                },
            ],
        }
    )
    board.overview.set_pending(
        [
            {
                "host": "h1",
                "action": "create",
                "kind": "ReplicationController",
                "namespace": "default",
                "name": "web",
                "pod": "web-2",
                "container": "",
                "reason": "replica web-2 missing",
                "source": "apps/web.yaml:1:1",
            }
        ]
    )
    board.set_desired_revision("bbbbbbbbbbbb")
    board.set_error(
        "validation",
        "revision bbbbbbbbbbbb is invalid: 1 error(s)",
        [f"apps/web.yaml:4:5: error: metadata.labels.x: value '{SCRIPT}' bad"],
    )
    board.overview.hold(
        "bbbbbbbbbbbb",
        "invalid",
        "revision bbbbbbbbbbbb is invalid: 1 error(s); still enforcing aaaaaaaaaaaa",
        [f"apps/web.yaml:4:5: error: metadata.labels.x: value '{SCRIPT}' bad"],
    )
    board.overview.set_warnings(["apps/web.yaml:20:9: warning: livenessProbe is not honoured"])
    board.overview.record_event(
        {
            "kind": "rollout_failed",
            "severity": "error",
            "instance": "prod",
            "revision": "aaaaaaaaaaaa",
            "time": "2030-01-01T00:00:00Z",
            "summary": "rollout of ReplicationController/web failed",
            "details": [],
            "host": "",
        }
    )
    board.overview.record_sync(
        {
            "revision": "aaaaaaaaaaaa",
            "reason": "poll",
            "result": "ok",
            "applied": 9,
            "failed": 0,
            "duration_seconds": 0.84,
        }
    )
    return board


def cells(view: dict[str, Any]) -> list[dict[str, Any]]:
    return [cell for s in view["sections"] for row in s["rows"] for cell in row.values()]


def texts(view: dict[str, Any]) -> str:
    parts = [view["title"], view["state"]["label"]]
    parts += [f["value"] for f in view["facts"]]
    parts += [b["title"] for b in view["banners"]]
    parts += [line for b in view["banners"] for line in b["lines"]]
    for cell in cells(view):
        parts += [cell["text"], *cell.get("chips", []), *cell.get("lines", [])]
    return "\n".join(str(p) for p in parts)


def test_the_page_view_says_what_a_person_needs() -> None:
    view = page_view(populated(StatusBoard()).snapshot())
    assert view["title"] == "reconciler · prod"
    assert view["state"] == {"label": "Revision held", "tone": "error"}
    held = view["banners"][0]
    assert held["tone"] == "error" and "bbbbbbbbbbbb is invalid" in held["title"]
    assert any(line.startswith("apps/web.yaml:4:5: error:") for line in held["lines"])
    ids = [s["id"] for s in view["sections"]]
    assert ids == [
        "hosts",
        "workloads",
        "pods",
        "services",
        "pending",
        "problems",
        "syncs",
        "events",
    ]
    sections = {s["id"]: s for s in view["sections"]}
    pod = sections["pods"]["rows"][0]
    assert pod["source"]["text"] == "apps/web.yaml:12:7" and pod["revision"]["mono"]
    assert pod["age"]["time"].endswith("Z") and pod["restarts"]["tone"] == "warn"
    assert sections["workloads"]["rows"][0]["rollout"]["tone"] == "error"
    assert sections["pending"]["rows"][0]["pod"]["text"] == "web-2"
    problems = sections["problems"]["rows"]
    assert [p["where"]["text"] for p in problems] == ["apps/web.yaml:4:5", "apps/web.yaml:20:9"]
    assert [p["severity"]["text"] for p in problems] == ["error", "warning"]
    assert "tok3n-secret-1" not in json.dumps(view)
    assert all(c.get("tone", "ok") in TONES for c in cells(view))


def test_manifest_text_stays_text_in_the_view() -> None:
    """The view keeps a committed ``<script>`` as the string it is; the page sets it with
    textContent (tests/integration/test_statuspage.py proves that in a browser)."""
    view = page_view(populated(StatusBoard()).snapshot())
    shown = texts(view)
    assert f"owner={SCRIPT}" in shown  # the annotation, as a chip
    assert f"apps/{SCRIPT}.yaml:1:1" in shown  # the file name
    assert f"value '{SCRIPT}' bad" in shown  # the label, in the held revision's error
    assert "&lt;" not in shown  # not pre-escaped either: the script sets text, not markup


def test_the_states_in_order_of_urgency() -> None:
    board = StatusBoard()
    assert page_view(board.snapshot())["state"]["label"] == "Starting"
    board.sync_started()
    assert page_view(board.snapshot())["state"]["label"] == "Syncing"
    board.sync_finished(ok=True)
    assert page_view(board.snapshot())["state"] == {"label": "Synced", "tone": "ok"}
    board.overview.set_pending([{"action": "create", "pod": "x"}])
    assert page_view(board.snapshot())["state"]["label"] == "Out of sync"
    board.sync_started()
    board.sync_finished(ok=False)
    assert page_view(board.snapshot())["state"]["label"] == "Failing"
    board.set_suspended(True)
    assert page_view(board.snapshot())["state"]["label"] == "Suspended"


def test_status_text_is_a_summary_not_a_dump() -> None:
    status = populated(StatusBoard()).snapshot()
    now = time.time()
    lines = status_lines(status, now)
    text = "\n".join(lines)
    assert lines[0] == "Instance:     prod"
    assert "Source:       https://***@git.example.com/ops/m.git  branch main  path prod" in lines
    assert "Revision:     aaaaaaaaaaaa (newest fetched: bbbbbbbbbbbb)" in lines
    assert re.search(r"^Held: +bbbbbbbbbbbb \(invalid, since \d+s ago\)", text, re.M)
    assert "  apps/web.yaml:4:5: error: metadata.labels.x:" in text
    assert re.search(
        r"^Last sync: +ok, \d+s ago, took 0\.84s, 9 applied, 0 failed \(poll\)$", text, re.M
    )
    assert "Hosts:        1 of 2 reachable" in lines
    assert re.search(r"^  h2 +no +<none> +<none> +connection refused$", text, re.M)
    assert re.search(r"^  ReplicationController +web +1/2 +1 +failed", text, re.M)
    assert "Pending:      1 change(s)" in lines
    assert "rollout_failed" in text
    for python in ("None", "False", "True", "{", "'"):
        assert python not in text.replace(f"'{SCRIPT}'", ""), python
    assert "tok3n-secret-1" not in text


def test_status_text_of_a_service_that_just_started() -> None:
    text = "\n".join(status_lines(StatusBoard("/srv/manifests").snapshot(), time.time()))
    assert "Last sync:    none yet" in text
    assert "Ready:        no (no successful sync yet)" in text
    assert "Hosts:        none observed yet" in text
    assert "Last error:   none" in text
    assert "None" not in text and "False" not in text


def test_ages() -> None:
    now = 1_000_000.0
    assert age(None, now) == "never"
    assert age("1970-01-12T13:46:35Z", now) == "5s ago"
    assert age("1970-01-12T13:44:41Z", now) == "119s ago"
    assert age("1970-01-12T13:40:00Z", now) == "6m ago"
    assert age("1970-01-12T11:00:00Z", now) == "2h ago"
    assert age("1970-01-01T00:00:00Z", now) == "11d ago"


def test_reconciler_status_prints_the_summary(api: Start) -> None:
    a = api()
    populated(a.board)
    result = CliRunner().invoke(cli, ["status", "--url", a.server.url])
    assert result.exit_code == 0, result.output
    assert "Last sync:    ok" in result.output and "Held:" in result.output
    assert "None" not in result.output and "False" not in result.output
    as_json = CliRunner().invoke(cli, ["status", "--url", a.server.url, "-o", "json"])
    assert json.loads(as_json.output)["held"]["revision"] == "bbbbbbbbbbbb"


def test_the_page_is_served_with_a_strict_policy(api: Start) -> None:
    a = api()
    populated(a.board)
    page = request(a.server, "GET", "/")
    assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
    assert page.headers["Content-Security-Policy"] == POLICY
    assert "default-src 'none'" in POLICY and "unsafe" not in POLICY
    assert page.headers["X-Frame-Options"] == "DENY"
    assert '<script src="/ui/page.js"' in page.text and "<script>" not in page.text
    assert "http://" not in page.text.replace('href="/', "") and "https://" not in page.text
    for path, kind in (
        ("/ui/page.js", "text/javascript"),
        ("/ui/page.css", "text/css"),
        ("/ui/icon.svg", "image/svg+xml"),
    ):
        asset = request(a.server, "GET", path)
        assert asset.status == 200 and asset.headers["Content-Type"].startswith(kind)
        assert "http://" not in asset.text.replace("http://www.w3.org/2000/svg", "")
    script = request(a.server, "GET", "/ui/page.js").text
    assert "innerHTML" not in script and "eval(" not in script
    assert "insertAdjacentHTML" not in script and "document.write" not in script
    view = request(a.server, "GET", "/ui/view")
    assert view.status == 200 and view.headers["Content-Security-Policy"] == POLICY
    assert json.loads(view.body) == page_view(a.board.snapshot())
    again = request(a.server, "GET", "/ui/view", headers={"If-None-Match": view.headers["ETag"]})
    assert again.status == 304 and again.body == b""
    a.board.set_suspended(True)
    changed = request(a.server, "GET", "/ui/view", headers={"If-None-Match": view.headers["ETag"]})
    assert changed.status == 200 and changed.headers["ETag"] != view.headers["ETag"]
    assert request(a.server, "POST", "/").status == 405


def test_file_names_are_shown_relative_to_the_source() -> None:
    board = populated(StatusBoard())
    error = "/cache/ops-1f2e/apps/a.yaml:3:1: error: x"
    board.overview.hold("cccccccccccc", "invalid", "invalid", [error])
    board.overview.set_root("/cache/ops-1f2e")
    view = page_view(board.snapshot())
    assert "apps/a.yaml:3:1: error: x" in view["banners"][0]["lines"]
    assert "/cache/ops-1f2e" not in json.dumps(view["banners"])
    lines = status_lines(board.snapshot(), time.time())
    assert "  apps/a.yaml:3:1: error: x" in lines
