"""``reconciler status``, ``suspend`` and ``resume``: talk to a running ``reconciler run``
over its HTTP API (``--url``).

Standard library only (urllib): these are small requests, and the commands should start
fast. ``suspend`` and ``resume`` sign their request with the service's secret
(``--webhook-secret``), with a timestamp, so that a captured request cannot be replayed
(``daemon.http.auth``).
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from typing import Any

import click

from reconciler.cli import options as opt
from reconciler.cli.group import EXIT_ERROR, EXIT_INVALID, EXIT_OK, cli
from reconciler.daemon.http.auth import signed_headers


def _request(url: str, path: str, method: str = "GET", secret: str = "") -> Any:
    """The service's answer (JSON when it is), or exit 1 on an HTTP error, 2 when nothing
    answers."""
    body = b""
    headers = signed_headers(secret, body, path) if secret else {}
    request = urllib.request.Request(
        url.rstrip("/") + path,
        data=body if method == "POST" else None,
        method=method,
        headers=headers,
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read().decode()
    except urllib.error.HTTPError as exc:
        click.echo(f"{url}{path}: HTTP {exc.code}: {exc.read().decode(errors='replace')}", err=True)
        sys.exit(EXIT_INVALID)
    except (urllib.error.URLError, OSError) as exc:
        click.echo(f"no reconciler service answers at {url}: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    try:
        return json.loads(text)
    except ValueError:
        return text


@cli.command("status")
@opt.url()
@click.option("-o", "--output", type=click.Choice(("text", "json")), default="text")
def status_command(url: str, output: str) -> None:
    """Show a running service's source, revision, last sync, hosts, workloads, pending
    changes, the revision it holds back and its last error (from its /status); -o json
    prints the JSON itself."""
    status = _request(url, "/status")
    if output == "json" or not isinstance(status, dict):
        click.echo(json.dumps(status, indent=2))
        sys.exit(EXIT_OK)
    from reconciler.render.statustext import status_lines

    for line in status_lines(status, time.time()):
        click.echo(line)
    sys.exit(EXIT_OK)


@cli.command("suspend")
@opt.url()
@opt.webhook_secret()
def suspend_command(url: str, webhook_secret: str) -> None:
    """Stop reconciling (the service keeps serving) until `reconciler resume`."""
    _request(url, "/suspend", "POST", webhook_secret)
    click.echo("suspended")


@cli.command("resume")
@opt.url()
@opt.webhook_secret()
def resume_command(url: str, webhook_secret: str) -> None:
    """Resume reconciling after `reconciler suspend` (a pass starts at once)."""
    _request(url, "/resume", "POST", webhook_secret)
    click.echo("resumed")
