"""The read-only status page: ``GET /``, its three files under ``/ui/``, and ``/ui/view``.

The page is static (``assets/``: HTML, one script, one stylesheet, an icon, all served
from the package, nothing from the internet); its script asks ``/ui/view`` every two
seconds for the view model that :func:`reconciler.render.statuspage.page_view` makes from
the board's snapshot, and draws it. ``/ui/view`` carries an ``ETag`` (a hash of its body),
so an unchanged page costs a 304 and no JSON.

Every answer of the page carries a strict Content-Security-Policy (:data:`POLICY`):
scripts, styles, images and requests only from this origin, no inline script or style, no
plugins, no framing, no form posts, no ``<base>``. The script never turns server text into
markup, so the policy is the second wall, not the first: a ``<script>`` committed in a
label is a string on the page, and would not run even if it were parsed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from email.message import Message
from http import HTTPStatus
from importlib import resources
from typing import Final

from reconciler.daemon.http.status import StatusBoard
from reconciler.render.statuspage import page_view

#: The Content-Security-Policy of every page answer.
POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
#: Headers of every page answer besides the server's own (no-store, nosniff).
PAGE_HEADERS: Final = (
    ("Content-Security-Policy", POLICY),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
)
#: path -> (file in assets/, content type)
ASSETS: Final = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/ui/page.js": ("page.js", "text/javascript; charset=utf-8"),
    "/ui/page.css": ("page.css", "text/css; charset=utf-8"),
    "/ui/icon.svg": ("icon.svg", "image/svg+xml"),
}


def _load(name: str) -> bytes:
    return (resources.files("reconciler.daemon.http") / "assets" / name).read_bytes()


def view_body(board: StatusBoard) -> tuple[bytes, str]:
    """The page's JSON and its ETag."""
    body = json.dumps(page_view(board.snapshot()), separators=(",", ":")).encode("utf-8")
    return body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


#: What an endpoint returns to the server: status, body, content type, extra headers.
PageReply = tuple[int, bytes, str, tuple[tuple[str, str], ...]]
PageEndpoint = Callable[[Message, bytes], PageReply]


def page_routes(board: StatusBoard) -> dict[str, PageEndpoint]:
    """``GET`` handlers of the page's paths (the assets read once, here)."""
    routes: dict[str, PageEndpoint] = {}
    for path, (name, content_type) in ASSETS.items():
        routes[path] = _static(_load(name), content_type)

    def view(headers: Message, body: bytes) -> PageReply:
        data, etag = view_body(board)
        extra = (*PAGE_HEADERS, ("ETag", etag))
        if etag in (headers.get("If-None-Match") or ""):
            return HTTPStatus.NOT_MODIFIED, b"", "application/json", extra
        return HTTPStatus.OK, data, "application/json", extra

    routes["/ui/view"] = view
    return routes


def _static(data: bytes, content_type: str) -> PageEndpoint:
    def answer(headers: Message, body: bytes) -> PageReply:
        return HTTPStatus.OK, data, content_type, PAGE_HEADERS

    return answer
