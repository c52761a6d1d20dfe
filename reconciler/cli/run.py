"""``reconciler run`` (the long-lived service) and the commands that talk to it:
``status``, ``suspend``, ``resume``.

Settings come from, in this order of precedence: command-line flags, ``RECONCILER_*``
environment variables (``--interval`` is ``RECONCILER_INTERVAL``...), a YAML config file
(``--config FILE`` or ``RECONCILER_CONFIG``; keys are the flags' names, with ``-`` or
``_``), then the defaults.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import click
import yaml

from reconciler.apply.state import state_dir
from reconciler.cli.group import EXIT_ERROR, EXIT_INVALID, EXIT_OK, cli
from reconciler.cli.ops import _load_hosts, _settings
from reconciler.core.errors import SourceError
from reconciler.daemon.config import RunConfig
from reconciler.daemon.logs import setup_logging
from reconciler.daemon.loop import ReconcileService
from reconciler.desire.settings import DEFAULT_INFRA_IMAGE
from reconciler.forwarder.build import default_forwarder_image
from reconciler.source.git import GitSource

DEFAULT_LISTEN = "127.0.0.1:9477"


def _load_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """Read the config file into click's default_map: flags and env vars still win."""
    if not value:
        return value
    try:
        data = yaml.safe_load(Path(value).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise click.BadParameter(f"cannot read {value}: {exc}", param_hint="--config") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise click.BadParameter(f"{value}: expected a mapping of settings", param_hint="--config")
    known = {p.name for p in ctx.command.params if p.name}
    defaults: dict[str, Any] = {}
    for key, item in data.items():
        name = str(key).replace("-", "_")
        if name not in known or name == "config":
            raise click.BadParameter(
                f"{value}: unknown setting {key!r} "
                f"(known: {', '.join(sorted(known - {'config'}))})",
                param_hint="--config",
            )
        defaults[name] = item
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    return value


def _env(name: str) -> str:
    return f"RECONCILER_{name.upper().replace('-', '_')}"


@cli.command("run")
@click.option(
    "--config",
    envvar="RECONCILER_CONFIG",
    callback=_load_config,
    is_eager=True,
    expose_value=False,
    help="YAML file of settings (keys as the flags); flags and RECONCILER_* env vars win.",
)
@click.option(
    "--source",
    envvar=_env("source"),
    required=True,
    help="Git URL or path, or a "
    "directory to watch. URLs and bare repositories are fetched with git.",
)
@click.option(
    "--branch",
    envvar=_env("branch"),
    default="",
    help="Branch, tag or commit (default: the remote's default branch).",
)
@click.option(
    "--path",
    "subpath",
    envvar=_env("path"),
    default="",
    help="Sub-directory of the source holding the manifests.",
)
@click.option(
    "--interval",
    envvar=_env("interval"),
    type=click.FloatRange(0.1),
    default=30.0,
    show_default=True,
    help="Seconds between git polls.",
)
@click.option(
    "--resync",
    envvar=_env("resync"),
    type=click.FloatRange(0.1),
    default=60.0,
    show_default=True,
    help="Seconds between full passes when nothing happens.",
)
@click.option(
    "--listen",
    envvar=_env("listen"),
    default=DEFAULT_LISTEN,
    show_default=True,
    help="HOST:PORT of /healthz /readyz /metrics /status /hooks/git.",
)
@click.option(
    "--hosts",
    "hosts_file",
    envvar=_env("hosts"),
    default=None,
    help="Hosts file (default: $DOCKER_HOST or the local socket).",
)
@click.option(
    "--instance",
    envvar=_env("instance"),
    default="default",
    show_default=True,
    help="Ownership scope.",
)
@click.option(
    "--host-grace",
    envvar=_env("host_grace"),
    type=click.FloatRange(0),
    default=60.0,
    show_default=True,
    help="Seconds an unreachable host keeps its pods.",
)
@click.option(
    "--infra-image", envvar=_env("infra_image"), default=DEFAULT_INFRA_IMAGE, show_default=True
)
@click.option(
    "--forwarder-image",
    envvar=_env("forwarder_image"),
    default=default_forwarder_image,
    show_default="reconciler/forwarder:<source digest>",
    help="Image of the Service forwarders; built when a host lacks it.",
)
@click.option("--cluster-cidr", envvar=_env("cluster_cidr"), default="")
@click.option(
    "--webhook-secret",
    envvar=_env("webhook_secret"),
    default="",
    help="HMAC-SHA256 secret of POST /hooks/git (GitHub signature or GitLab token); "
    "without it the webhook is off.",
)
@click.option("--once", is_flag=True, envvar=_env("once"), help="One pass, then exit (0 ok).")
@click.option(
    "--cache-dir",
    envvar=_env("cache_dir"),
    default=None,
    help="Where git clones live (default: $XDG_CACHE_HOME/reconciler).",
)
@click.option(
    "--log-format",
    envvar=_env("log_format"),
    type=click.Choice(("text", "json")),
    default="text",
    show_default=True,
)
@click.option(
    "--concurrency",
    envvar=_env("concurrency"),
    type=click.IntRange(1, 64),
    default=8,
    show_default=True,
)
@click.option("--prune/--no-prune", envvar=_env("prune"), default=True, show_default=True)
@click.option(
    "--max-prune", envvar=_env("max_prune"), type=click.IntRange(0), default=20, show_default=True
)
@click.option("--allow-mass-prune", envvar=_env("allow_mass_prune"), is_flag=True)
@click.option(
    "--grace-period",
    envvar=_env("grace_period"),
    type=click.IntRange(0),
    default=10,
    show_default=True,
    help="Seconds between SIGTERM and SIGKILL.",
)
@click.option(
    "--print-config",
    is_flag=True,
    help="Print the settings in effect (after flags, env vars and file) and exit.",
)
def run_command(
    source: str,
    branch: str,
    subpath: str,
    interval: float,
    resync: float,
    listen: str,
    hosts_file: str | None,
    instance: str,
    host_grace: float,
    infra_image: str,
    forwarder_image: str,
    cluster_cidr: str,
    webhook_secret: str,
    once: bool,
    cache_dir: str | None,
    log_format: str,
    concurrency: int,
    prune: bool,
    max_prune: int,
    allow_mass_prune: bool,
    grace_period: int,
    print_config: bool,
) -> None:
    """Reconcile continuously: commit to git and the hosts follow; a container dies and
    comes back. Serves health, readiness, metrics, status and a push webhook."""
    _, _, port = listen.rpartition(":")
    if not port.isdigit():
        raise click.BadParameter(f"{listen!r}: expected HOST:PORT", param_hint="--listen")
    if print_config:
        shown = {
            name: value
            for name, value in click.get_current_context().params.items()
            if name not in ("print_config", "webhook_secret")
        }
        shown["webhook_secret"] = "******" if webhook_secret else ""
        click.echo(json.dumps(shown, indent=2, sort_keys=True))
        sys.exit(EXIT_OK)
    setup_logging(log_format)
    config = RunConfig(
        source=source,
        branch=branch,
        path=subpath,
        interval=interval,
        resync=resync,
        listen=listen,
        hosts=_load_hosts(hosts_file),
        instance=instance,
        settings=_settings(instance, infra_image, forwarder_image, cluster_cidr, host_grace),
        webhook_secret=webhook_secret,
        once=once,
        cache_dir=Path(cache_dir) if cache_dir else None,
        state_dir=state_dir(),
        concurrency=concurrency,
        prune=prune,
        max_prune=max_prune,
        allow_mass_prune=allow_mass_prune,
        grace_seconds=grace_period,
    )
    if config.is_git:
        try:  # malformed url, ref or path: a usage error now, not a failing service later
            GitSource(source, ref=branch, path=subpath)
        except SourceError as exc:
            raise click.BadParameter(str(exc), param_hint="--source/--branch/--path") from exc
    elif not Path(source).is_dir():
        raise click.BadParameter(
            f"{source}: no such directory or repository", param_hint="--source"
        )
    sys.exit(ReconcileService(config).run())


# -- talking to a running service -------------------------------------------------------------
def _url_option(function: Any) -> Any:
    return click.option(
        "--url",
        envvar="RECONCILER_URL",
        default=f"http://{DEFAULT_LISTEN}",
        show_default=True,
        help="Where the service listens.",
    )(function)


def _request(url: str, path: str, method: str = "GET", secret: str = "") -> Any:
    body = b""
    headers = {}
    if secret:
        digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        headers["X-Reconciler-Signature-256"] = f"sha256={digest}"
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
@_url_option
@click.option("-o", "--output", type=click.Choice(("text", "json")), default="text")
def status_command(url: str, output: str) -> None:
    """Show a running service's source, revision, last sync, hosts, pending changes and
    last error (from its /status)."""
    status = _request(url, "/status")
    if output == "json" or not isinstance(status, dict):
        click.echo(json.dumps(status, indent=2))
        sys.exit(EXIT_OK)
    for key, value in status.items():
        if isinstance(value, dict | list):
            click.echo(f"{key}:")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for sub, item in items:
                click.echo(f"  {sub}: {json.dumps(item) if isinstance(item, dict) else item}")
        else:
            click.echo(f"{key}: {value}")
    sys.exit(EXIT_OK)


@cli.command("suspend")
@_url_option
@click.option("--webhook-secret", envvar="RECONCILER_WEBHOOK_SECRET", default="")
def suspend_command(url: str, webhook_secret: str) -> None:
    """Stop reconciling (the service keeps serving) until `reconciler resume`."""
    _request(url, "/suspend", "POST", webhook_secret)
    click.echo("suspended")


@cli.command("resume")
@_url_option
@click.option("--webhook-secret", envvar="RECONCILER_WEBHOOK_SECRET", default="")
def resume_command(url: str, webhook_secret: str) -> None:
    """Resume reconciling after `reconciler suspend` (a pass starts at once)."""
    _request(url, "/resume", "POST", webhook_secret)
    click.echo("resumed")
