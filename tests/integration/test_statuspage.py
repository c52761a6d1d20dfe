"""The status page in a real browser: Debian's ``chromium``, headless, against a real
``reconciler run`` on a git repository and the real engine.

The service goes through what an operator needs to see: a commit applied (hosts, pods with
their manifest's file:line and commit), a rollout that fails (a template whose image is not
there), a suspension with a commit pending (the plan it would apply), and an invalid commit
held back (its error with file:line). Manifests carry markup where a committer can put it:
in an annotation, in a file name, and in a label (which makes that commit invalid, so the
markup reaches the page through the error message). The page must show all of it as text.

Assertions are made on the DOM after the page's script ran (``--dump-dom``); screenshots
at desktop and phone widths are kept under ``$RECONCILER_TEST_ARTIFACTS`` (default
``/tmp/reconciler-test-artifacts``)/statuspage, whose path the test prints.
"""

from __future__ import annotations

import html
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, ClassVar

import pytest

from reconciler.daemon.http.auth import signed_headers

from .conftest import Rig, wait_for
from .test_run import SECRET, Repo, Service, services

__all__ = ["services"]  # the fixture, imported to be found

ARTIFACTS = Path(os.environ.get("RECONCILER_TEST_ARTIFACTS", "/tmp/reconciler-test-artifacts"))
#: Markup a committer could write, each with a marker that shows whether it ran.
ANNOTATION = '<script>document.body.dataset.pwned="annotation"</script>'
IMAGE_TAG = '<img src=x onerror="document.body.dataset.pwned=1">'
LABEL = "<script>alert(1)</script>"
#: A directory and a file whose joined path reads as a script element.
EVIL_DIR, EVIL_FILE = "x<script>alert(2)<", "script>.yaml"

RC = """\
apiVersion: v1
kind: ReplicationController
metadata:
  name: {name}
  labels: {{app: {name}, tier: {tier}}}
  annotations:
    note: '{annotation}'
    image: '{image_tag}'
spec:
  replicas: {replicas}
  selector: {{app: {name}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
        - name: web
          image: {image}
          imagePullPolicy: Never
          command: ["sh", "-c"]
          args: ["mkdir -p /www && echo hi > /www/index.html && exec httpd -f -p 8080 -h /www"]
          ports: [{{containerPort: 8080}}]
          env: [{{name: API_TOKEN, value: s3cr3t-value}}]
"""
SERVICE = """\
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"""


def rc(
    replicas: int = 2, image: str = "sample/frontend:1.0", tier: str = "front", name: str = "web"
) -> str:
    return RC.format(
        name=name,
        replicas=replicas,
        image=image,
        tier=tier,
        annotation=ANNOTATION,
        image_tag=IMAGE_TAG,
    )


class Node:
    def __init__(self, tag: str, attrs: dict[str, str], parent: Node | None) -> None:
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node | str] = []

    @property
    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text for c in self.children)

    def all(self, tag: str = "", **attrs: str) -> list[Node]:
        found = []
        for child in self.children:
            if isinstance(child, Node):
                wanted = (not tag or child.tag == tag) and all(
                    (child.attrs.get(k.rstrip("_")) or "").split().count(v)
                    if k.rstrip("_") == "class"
                    else child.attrs.get(k.rstrip("_")) == v
                    for k, v in attrs.items()
                )
                if wanted:
                    found.append(child)
                found += child.all(tag, **attrs)
        return found

    def one(self, tag: str = "", **attrs: str) -> Node:
        found = self.all(tag, **attrs)
        assert len(found) == 1, (tag, attrs, len(found))
        return found[0]


class Dom(HTMLParser):
    """The DOM chromium printed, as a tree of :class:`Node` (text unescaped)."""

    VOID: ClassVar[set[str]] = {"meta", "link", "img", "br", "input", "hr"}

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {}, None)
        self.at = self.root
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs}, self.at)
        self.at.children.append(node)
        if tag not in self.VOID:
            self.at = node

    def handle_endtag(self, tag: str) -> None:
        node: Node | None = self.at
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.at = node.parent

    def handle_data(self, data: str) -> None:
        self.at.children.append(data)


def chromium(*args: str, timeout: float = 90) -> str:
    """Run headless chromium once (its own profile), killed with its children if it hangs."""
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail("chromium is needed: apt-get install -y chromium")
    with tempfile.TemporaryDirectory(prefix="reconciler-chromium-") as profile:
        process = subprocess.Popen(
            [
                binary,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--enable-logging=stderr",
                "--log-level=0",
                "--virtual-time-budget=6000",
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise
    console = [line for line in err.splitlines() if ":CONSOLE" in line]
    assert not console, "the page logged to the console:\n" + "\n".join(console)
    return out


def cells(section: Node) -> list[dict[str, Node]]:
    """A section's rows: column label -> cell."""
    return [{td.attrs["data-label"]: td for td in tr.all("td")} for tr in section.all("tr")[1:]]


def post(service: Service, path: str) -> int:
    return service.post(path, b"", signed_headers(SECRET, b"", path))  # once, timestamped


def test_the_page_in_a_browser(rig: Rig, services: Callable[..., Service]) -> None:
    repo = Repo(rig.root)
    web = f"apps/{EVIL_DIR}/{EVIL_FILE}"
    first = repo.commit(
        {web: rc(), "apps/canary.yaml": rc(1, name="canary"), "apps/service.yaml": SERVICE},
        "web and its canary",
    )
    service = services(str(repo.bare), "--branch", "main", "--interval", "0.5", "--resync", "2")

    def status() -> dict[str, Any]:
        return service.status()

    wait_for(lambda: status()["revision"]["applied"] == first, timeout=60, what="first commit")
    wait_for(
        lambda: len([p for p in status()["world"]["pods"] if p["status"] == "Running"]) == 3,
        timeout=60,
        what="three pods running",
    )

    broken = repo.commit({"apps/canary.yaml": rc(1, "sample/missing:1", name="canary")}, "bad")
    wait_for(
        lambda: any(e["kind"] == "rollout_failed" for e in status()["events"]["recent"]),
        timeout=60,
        what="the canary's rollout to fail",
    )
    assert post(service, "/suspend") == 200
    pending = repo.commit({web: rc(3)}, "web: 3 replicas")
    wait_for(
        lambda: status()["revision"]["desired"] == pending and status()["pending"]["total"] > 0,
        timeout=60,
        what="a pending plan",
    )
    held = repo.commit({web: rc(3, tier=f"'{LABEL}'")}, "a label no name may hold")
    wait_for(
        lambda: (status()["held"] or {}).get("revision") == held,
        timeout=60,
        what="the invalid commit to be held",
    )

    url = service.url + "/"
    dom = Dom(chromium("--dump-dom", url))
    body = dom.root.one("body")
    assert body.attrs.get("data-ready") == "true"  # the script ran, fetched and drew
    assert "data-pwned" not in body.attrs  # no committed markup ran
    assert len(dom.root.all("script")) == 1  # the page's own, nothing injected
    assert not dom.root.all("img", src="x")
    assert dom.root.one(id="state").text == "Suspended"
    assert dom.root.one("title").text == f"reconciler · {rig.instance}"

    banners = dom.root.one(id="banners").all("div", class_="banner")
    held_banner = next(b for b in banners if held in b.text)
    assert "is invalid" in held_banner.text
    error = next(li.text for li in held_banner.all("li") if "error:" in li.text)
    assert f"{EVIL_DIR}/{EVIL_FILE}:5:" in error and LABEL in error  # file:line, as text
    assert any("suspended" in b.text for b in banners)

    sections = {s.attrs["id"]: s for s in dom.root.all("section")}
    hosts = cells(sections["section-hosts"])
    assert [(h["Host"].text, h["Reachable"].text) for h in hosts] == [("local", "yes")]
    assert hosts[0]["Engine"].text  # the engine's version
    pods = {p["Pod"].text: p for p in cells(sections["section-pods"])}
    assert "web-1" in pods, list(pods)
    assert f"{EVIL_DIR}/{EVIL_FILE}:" in pods["web-1"]["Manifest"].text
    assert pods["web-1"]["Commit"].text == first
    assert pods["web-1"]["Status"].text == "Running"
    assert pods["web-1"]["Age"].text.endswith(("s", "m"))
    workloads = {w["Workload"].text: w for w in cells(sections["section-workloads"])}
    canary = workloads["ReplicationController/canary"]
    assert (
        canary["Rollout"].text.startswith("failed")
        and "tone-error" in canary["Rollout"].attrs["class"]
    )
    assert "sample/missing:1" in canary["Rollout"].text
    workload = workloads["ReplicationController/web"]
    # suspended: the revision planned (3 replicas) is not applied, 2 run
    assert workload["Rollout"].text == "progressing" and workload["Ready"].text == "2/3"
    chips = [c.text for c in workload["Annotations"].all("span", class_="chip")]
    assert f"note={ANNOTATION}" in chips and f"image={IMAGE_TAG}" in chips
    pending_rows = cells(sections["section-pending"])
    assert {(r["Action"].text, r["Pod"].text) for r in pending_rows} >= {("create", "web-2")}
    assert any(f"{EVIL_DIR}/{EVIL_FILE}" in r["Manifest"].text for r in pending_rows)
    events = [r["Event"].text for r in cells(sections["section-events"])]
    assert "rollout failed" in events and "revision held" in events
    assert "sync applied" in events
    services_rows = cells(sections["section-services"])
    assert services_rows[0]["Service"].text == "web" and services_rows[0]["Cluster IP"].text
    problems = cells(sections["section-problems"])
    assert any(LABEL in p["Message"].text for p in problems)
    page_text = html.unescape(dom.root.text)
    assert "s3cr3t-value" not in page_text and broken  # no Secret value anywhere

    directory = ARTIFACTS / "statuspage"
    directory.mkdir(parents=True, exist_ok=True)
    for name, size in (("desktop", "1280,2600"), ("phone", "390,5200")):
        shot = directory / f"{name}.png"
        shot.unlink(missing_ok=True)
        chromium(f"--screenshot={shot}", f"--window-size={size}", url)
        assert shot.stat().st_size > 10_000, shot
    print(f"\nstatus page screenshots: {directory}/desktop.png, {directory}/phone.png")
