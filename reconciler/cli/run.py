"""``reconciler run``: the long-lived service, which keeps the hosts on a git revision.

Settings come from, in this order of precedence: command-line flags, ``RECONCILER_*``
environment variables (``--interval`` is ``RECONCILER_INTERVAL``...), a YAML config file
(``--config FILE`` or ``RECONCILER_CONFIG``; keys are the settings' names, with ``-`` or
``_``: those the command's parameters have, so ``--hosts`` is ``hosts_file`` and ``--path``
``subpath``), then the defaults. This module reads them into a ``RunConfig`` and hands it
to ``daemon.loop``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
import yaml

from reconciler.apply.state import state_dir
from reconciler.cli import options as opt
from reconciler.cli.admission import admission_from_flags
from reconciler.cli.common import hosts_from_flag, keyring_from_flags, settings_from_flags
from reconciler.cli.group import EXIT_OK, cli
from reconciler.core.errors import SourceError
from reconciler.daemon.config import RunConfig
from reconciler.daemon.logs import setup_logging
from reconciler.daemon.loop import ReconcileService
from reconciler.daemon.notify import check_url, shown_url
from reconciler.source.git import GitSource, SignaturePolicy


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


@cli.command("run")
@click.option(
    "--config",
    envvar=opt.env_var("config"),
    callback=_load_config,
    is_eager=True,
    expose_value=False,
    help="YAML file of settings (keys as the flags); flags and RECONCILER_* env vars win.",
)
@opt.source_location()
@opt.exclude()
@click.option(
    "--branch",
    envvar=opt.env_var("branch"),
    default="",
    help="Branch, tag or commit (default: the remote's default branch).",
)
@click.option(
    "--path",
    "subpath",
    envvar=opt.env_var("path"),
    default="",
    help="Sub-directory of the source holding the manifests.",
)
@click.option(
    "--interval",
    envvar=opt.env_var("interval"),
    type=click.FloatRange(0.1),
    default=30.0,
    show_default=True,
    help="Seconds between git polls.",
)
@click.option(
    "--resync",
    envvar=opt.env_var("resync"),
    type=click.FloatRange(0.1),
    default=60.0,
    show_default=True,
    help="Seconds between full passes when nothing happens.",
)
@click.option(
    "--listen",
    envvar=opt.env_var("listen"),
    default=opt.DEFAULT_LISTEN,
    show_default=True,
    help="HOST:PORT of the status page (/) and /healthz /readyz /metrics /status /hooks/git.",
)
@opt.hosts()
@opt.instance()
@opt.host_grace()
@opt.infra_image()
@opt.forwarder_image()
@opt.cluster_cidr()
@opt.webhook_secret(
    "HMAC-SHA256 secret of POST /hooks/git (GitHub signature or GitLab token); "
    "without it the webhook is off."
)
@click.option(
    "--once", is_flag=True, envvar=opt.env_var("once"), help="One pass, then exit (0 ok)."
)
@click.option(
    "--cache-dir",
    envvar=opt.env_var("cache-dir"),
    default=None,
    help="Where git clones live (default: $XDG_CACHE_HOME/reconciler).",
)
@click.option(
    "--log-format",
    envvar=opt.env_var("log-format"),
    type=click.Choice(("text", "json")),
    default="text",
    show_default=True,
)
@opt.concurrency(from_env=True)
@opt.observe_timeout(from_env=True)
@opt.prune(from_env=True)
@opt.max_prune(from_env=True)
@opt.allow_mass_prune(from_env=True)
@opt.max_create(from_env=True)
@opt.allow_mass_create(from_env=True)
@opt.grace_period(from_env=True, most=None)
@opt.policy()
@opt.max_pods()
@opt.source_limits()
@opt.sops_age_key_file(from_env=True)
@click.option(
    "--notify",
    envvar=opt.env_var("notify"),
    multiple=True,
    metavar="URL",
    help="POST every event (applied, failed, held, rollout failed, drift healed, host lost "
    "or back) to URL; repeatable (the env var takes several, space-separated).",
)
@click.option(
    "--notify-format",
    envvar=opt.env_var("notify-format"),
    type=click.Choice(("json", "slack")),
    default="json",
    show_default=True,
    help='Body of the notifications: the event as JSON, or a Slack-compatible {"text"}.',
)
@click.option(
    "--verify-signatures",
    is_flag=True,
    envvar=opt.env_var("verify-signatures"),
    help="Apply only commits signed by an allowed key (git sources); any other commit is "
    "held like an invalid one.",
)
@click.option(
    "--allowed-signers",
    envvar=opt.env_var("allowed-signers"),
    default=None,
    metavar="FILE",
    help="SSH keys that may sign, in git's allowed_signers format (gpg.ssh.allowedSignersFile).",
)
@click.option(
    "--gpg-keyring",
    envvar=opt.env_var("gpg-keyring"),
    default=None,
    metavar="FILE",
    help="GPG public keys that may sign (as `gpg --export` writes them).",
)
@click.option(
    "--print-config",
    is_flag=True,
    help="Print the settings in effect (after flags, env vars and file) and exit.",
)
def run_command(
    source: str,
    exclude: tuple[str, ...],
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
    observe_timeout: float,
    prune: bool,
    max_prune: int,
    allow_mass_prune: bool,
    grace_period: int,
    policy: str,
    allow_host_path: tuple[str, ...],
    max_pods: int,
    max_source_files: int,
    max_source_bytes: int,
    max_create: int,
    allow_mass_create: bool,
    notify: tuple[str, ...],
    notify_format: str,
    verify_signatures: bool,
    allowed_signers: str | None,
    gpg_keyring: str | None,
    sops_age_key_file: str | None,
    print_config: bool,
) -> None:
    """Reconcile continuously: commit to git and the hosts follow; a container dies and
    comes back. Serves health, readiness, metrics, status and a push webhook."""
    _, _, port = listen.rpartition(":")
    if not port.isdigit():
        raise click.BadParameter(f"{listen!r}: expected HOST:PORT", param_hint="--listen")
    for url in notify:
        problem = check_url(url)
        if problem:
            raise click.BadParameter(problem, param_hint="--notify")
    if (allowed_signers or gpg_keyring) and not verify_signatures:
        raise click.BadParameter(
            "a key file without --verify-signatures would check nothing: add --verify-signatures",
            param_hint="--allowed-signers/--gpg-keyring",
        )
    if print_config:
        shown = {
            name: value
            for name, value in click.get_current_context().params.items()
            if name not in ("print_config", "webhook_secret")
        }
        shown["webhook_secret"] = "******" if webhook_secret else ""
        shown["notify"] = [shown_url(url) for url in notify]  # a hook's URL is its secret
        click.echo(json.dumps(shown, indent=2, sort_keys=True))
        sys.exit(EXIT_OK)
    admitted = admission_from_flags(
        policy, allow_host_path, max_source_files, max_source_bytes, max_pods
    )
    setup_logging(log_format)
    config = RunConfig(
        source=source,
        branch=branch,
        path=subpath,
        exclude=tuple(exclude),
        interval=interval,
        resync=resync,
        listen=listen,
        hosts=hosts_from_flag(hosts_file),
        instance=instance,
        settings=settings_from_flags(
            instance, infra_image, forwarder_image, cluster_cidr, host_grace
        ),
        webhook_secret=webhook_secret,
        once=once,
        cache_dir=Path(cache_dir) if cache_dir else None,
        state_dir=state_dir(),
        concurrency=concurrency,
        prune=prune,
        max_prune=max_prune,
        allow_mass_prune=allow_mass_prune,
        max_create=max_create,
        allow_mass_create=allow_mass_create,
        policy=admitted.policy,
        source_limits=admitted.limits,
        max_pods=max_pods,
        grace_seconds=grace_period,
        verify_signatures=verify_signatures,
        allowed_signers=Path(allowed_signers) if allowed_signers else None,
        gpg_keyring=Path(gpg_keyring) if gpg_keyring else None,
        notify=notify,
        notify_format=notify_format,
        keyring=keyring_from_flags(sops_age_key_file),
        observe_timeout=observe_timeout,
    )
    if verify_signatures:
        if not config.is_git:
            raise click.BadParameter(
                "only a git source has commits to verify", param_hint="--verify-signatures"
            )
        try:
            SignaturePolicy(config.allowed_signers, config.gpg_keyring).check()
        except SourceError as exc:
            raise click.BadParameter(str(exc), param_hint="--verify-signatures") from exc
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
