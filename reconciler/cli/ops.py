"""The commands that observe and change hosts: ``diff``, ``apply``, ``get``, ``down`` and
``images``, and the options they share with ``cli_run``. Imported by ``cli``'s group on
first use of one of them; they register themselves on it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import click

from reconciler.apply.converge import (
    apply_plan,
    connect,
    converge,
    load_source,
    make_plan,
    observe,
    observe_and_remember,
    source_revision,
)
from reconciler.apply.execute import ActionResult, ApplyReport
from reconciler.apply.state import state_dir
from reconciler.check.validate import ValidationResult
from reconciler.cli.group import EXIT_ERROR, EXIT_INVALID, EXIT_OK, cli
from reconciler.core import labels as L
from reconciler.core.errors import (
    ApplyError,
    HostsFileError,
    HostUnavailable,
    ImageSourceError,
    InputError,
    SelectorError,
)
from reconciler.core.model import Diagnostic, Manifest
from reconciler.core.selectors import parse_selector
from reconciler.desire.hostmemory import HostRecord
from reconciler.desire.services import cluster_network
from reconciler.desire.settings import DEFAULT_INFRA_IMAGE, Settings
from reconciler.engine.host import DockerHost
from reconciler.forwarder.build import default_forwarder_image
from reconciler.plan.guards import Limits, refusals
from reconciler.plan.model import Plan
from reconciler.plan.planner import removal_plan
from reconciler.render.diagnostics import diagnostic_line, validation_summary
from reconciler.render.plans import plan_json, plan_markdown, plan_text_lines
from reconciler.render.views import (
    forwarder_views,
    host_rows,
    live_pods,
    pod_rows,
    rc_rows,
    service_rows,
    table_lines,
)
from reconciler.source.hosts import Host, load_hosts


# -- shared options -------------------------------------------------------------------------
def _instance_option(function: Any) -> Any:
    return click.option(
        "--instance",
        default=lambda: os.environ.get("RECONCILER_INSTANCE", L.DEFAULT_INSTANCE),
        show_default="default (or $RECONCILER_INSTANCE)",
        help="Ownership scope: only objects labelled with this instance are seen or touched.",
    )(function)


def _hosts_option(function: Any) -> Any:
    return click.option(
        "--hosts",
        "hosts_file",
        type=str,
        default=lambda: os.environ.get("RECONCILER_HOSTS"),
        help="Hosts file (YAML). Default: one host from DOCKER_HOST or the local socket.",
    )(function)


def _source_option(function: Any) -> Any:
    return click.option(
        "--source",
        "sources",
        multiple=True,
        default=(),
        help="Manifests: files or directories (repeatable). Default: the current directory.",
    )(function)


def _infra_image_option(function: Any) -> Any:
    """--infra-image and --forwarder-image: the two images the reconciler makes itself."""
    function = click.option(
        "--forwarder-image",
        default=lambda: os.environ.get("RECONCILER_FORWARDER_IMAGE", default_forwarder_image()),
        show_default="reconciler/forwarder:<source digest>",
        help="Image of the Service forwarders; built from the packaged forwarder when a host "
        "lacks it.",
    )(function)
    return click.option(
        "--infra-image",
        default=lambda: os.environ.get("RECONCILER_INFRA_IMAGE", DEFAULT_INFRA_IMAGE),
        show_default=DEFAULT_INFRA_IMAGE,
        help="Image of the pods' infra containers; imported from busybox when a host lacks it.",
    )(function)


def _cluster_cidr_option(function: Any) -> Any:
    return click.option(
        "--cluster-cidr",
        default=lambda: os.environ.get("RECONCILER_CLUSTER_CIDR", ""),
        help="Subnet of the instance's network on every host (Service cluster IPs come from "
        "its upper half). Default: a /20 in 10.64.0.0/10 derived from --instance.",
    )(function)


def _host_grace_option(function: Any) -> Any:
    return click.option(
        "--host-grace",
        type=click.FloatRange(0),
        default=lambda: float(os.environ.get("RECONCILER_HOST_GRACE", "60")),
        show_default="60",
        help="Seconds an unreachable host keeps its pods before its ReplicationController "
        "replicas are placed on the other hosts (bare Pods are never moved).",
    )(function)


def _grace_option(function: Any) -> Any:
    return click.option(
        "--grace-period",
        type=click.IntRange(0, 3600),
        default=10,
        show_default=True,
        help="Seconds a container gets to stop before it is killed.",
    )(function)


def _print_diagnostics(diagnostics: Sequence[Diagnostic]) -> None:
    for d in diagnostics:
        click.echo(diagnostic_line(d), err=True)


def _load_hosts(hosts_file: str | None) -> list[Host]:
    try:
        return load_hosts(hosts_file, os.environ)
    except HostsFileError as exc:
        _print_diagnostics(exc.diagnostics)
        raise SystemExit(EXIT_ERROR) from exc


def _validated_source(sources: tuple[str, ...]) -> tuple[ValidationResult, str]:
    """Load and validate; on any error print the validate messages and exit 2."""
    paths = list(sources) or ["."]
    try:
        result, files = load_source(paths)
    except InputError as exc:
        raise click.UsageError(str(exc)) from exc
    if not result.valid:
        _print_diagnostics(result.diagnostics)
        click.echo(
            f"{validation_summary(result.diagnostics, len(result.manifests), files)}: "
            "nothing applied",
            err=True,
        )
        raise SystemExit(EXIT_ERROR)
    _print_diagnostics(result.warnings)
    return result, source_revision(paths)


def _echo_styled(lines: Sequence[tuple[str, str]]) -> None:
    if sys.stdout.isatty() and not os.environ.get("NO_COLOR"):
        from rich.console import Console
        from rich.text import Text

        console = Console(highlight=False, soft_wrap=True)
        for text, style in lines:
            console.print(Text(text, style=style))
    else:
        for text, _ in lines:
            click.echo(text)


@dataclass
class _Computed:
    validation: ValidationResult
    plan: Plan
    revision: str
    runtimes: dict[str, DockerHost]
    hosts: list[Host]
    settings: Settings
    prune: bool
    host_memory: dict[str, HostRecord]
    now: float


def _settings(
    instance: str,
    infra_image: str,
    forwarder_image: str,
    cluster_cidr: str,
    host_grace: float = 60.0,
) -> Settings:
    settings = Settings(
        instance=instance,
        infra_image=infra_image,
        forwarder_image=forwarder_image,
        cluster_cidr=cluster_cidr,
        host_grace=host_grace,
    )
    try:
        settings.network  # noqa: B018 - validates the CIDR before anything runs
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--cluster-cidr") from exc
    return settings


def _compute(
    sources: tuple[str, ...],
    hosts_file: str | None,
    settings: Settings,
    prune: bool,
    grace: int = 10,
) -> _Computed:
    validation, revision = _validated_source(sources)
    hosts = _load_hosts(hosts_file)
    runtimes = connect(hosts, settings.instance, revision, grace_seconds=grace)
    live, memory, now = observe_and_remember(runtimes, settings.instance, state_dir())
    _, the_plan = make_plan(
        validation.manifests, hosts, live, settings, prune=prune, host_memory=memory, now=now
    )
    return _Computed(validation, the_plan, revision, runtimes, hosts, settings, prune, memory, now)


@cli.command("diff")
@_source_option
@_hosts_option
@_instance_option
@_infra_image_option
@_cluster_cidr_option
@_host_grace_option
@click.option(
    "-o",
    "--output",
    type=click.Choice(("text", "json", "markdown")),
    default="text",
    show_default=True,
    help="text for people, json for tools, markdown for a PR comment.",
)
@click.option(
    "--prune/--no-prune",
    default=True,
    show_default=True,
    help="Count owned objects no longer in the manifests as removals.",
)
def diff_command(
    sources: tuple[str, ...],
    hosts_file: str | None,
    instance: str,
    infra_image: str,
    forwarder_image: str,
    cluster_cidr: str,
    host_grace: float,
    output: str,
    prune: bool,
) -> None:
    """Show what apply would change, without changing anything.

    Exit 0 when the hosts are in sync, 1 when changes are pending, 2 on an error
    (invalid manifests, unreadable hosts file, unreachable host).
    """
    computed = _compute(
        sources,
        hosts_file,
        _settings(instance, infra_image, forwarder_image, cluster_cidr, host_grace),
        prune,
    )
    the_plan, revision = computed.plan, computed.revision
    if output == "json":
        click.echo(plan_json(the_plan, revision))
    elif output == "markdown":
        click.echo(plan_markdown(the_plan, revision), nl=False)
    else:
        _echo_styled(plan_text_lines(the_plan, revision))
    if the_plan.unreachable or any(d.is_error for d in the_plan.problems):
        sys.exit(EXIT_ERROR)
    sys.exit(EXIT_OK if the_plan.in_sync else EXIT_INVALID)


def _run_with_progress(
    the_plan: Plan, runtimes: dict[str, DockerHost], concurrency: int, computed: _Computed
) -> ApplyReport:
    """Two-phase apply (pods, then the forwarders that follow them), with a progress bar."""

    def run(on_result: Any = None) -> ApplyReport:
        done = converge(
            the_plan,
            computed.validation.manifests,
            computed.hosts,
            computed.settings,
            runtimes,
            prune=computed.prune,
            host_memory=computed.host_memory,
            now=computed.now,
            state_dir=state_dir(),
            concurrency=concurrency,
            on_result=on_result,
        )
        if done.followup is not None and done.followup.actions:
            click.echo(
                f"services: {len(done.followup.actions)} forwarder change(s) after the pods changed"
            )
        return done.report

    if not (sys.stdout.isatty() and the_plan.actions):
        return run()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(
        TextColumn("applying"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}")
    ) as progress:
        task = progress.add_task("", total=len(the_plan.actions))

        def advance(result: ActionResult) -> None:
            progress.update(
                task, advance=1, description=f"{result.action.verb} {result.action.pod}"
            )

        return run(advance)


def _report_results(report: Any) -> None:
    for result in sorted(report.results, key=lambda r: (r.action.host, r.action.pod)):
        action = result.action
        where = f" ({action.source})" if action.source else ""
        target = f"{action.owner.kind}/{action.owner.name} pod {action.pod}"
        if action.container:
            target += f" container {action.container}"
        if result.ok:
            click.echo(f"  ok      {action.verb.value:<8} {target} on {action.host}")
        else:
            click.echo(
                f"  FAILED  {action.verb.value:<8} {target} on {action.host}{where}: {result.error}"
            )


@cli.command("apply")
@_source_option
@_hosts_option
@_instance_option
@_infra_image_option
@_cluster_cidr_option
@_host_grace_option
@_grace_option
@click.option("--dry-run", is_flag=True, help="Print the plan and change nothing (like diff).")
@click.option(
    "--prune/--no-prune",
    default=True,
    show_default=True,
    help="Remove owned objects that are no longer in the manifests.",
)
@click.option(
    "--allow-mass-prune",
    is_flag=True,
    help="Allow a plan that removes every owned pod on a host, or more than --max-prune.",
)
@click.option(
    "--max-prune",
    type=click.IntRange(0),
    default=20,
    show_default=True,
    help="Most pods one apply may prune per host without --allow-mass-prune.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=8,
    show_default=True,
    help="Docker operations at once per host.",
)
def apply_command(
    sources: tuple[str, ...],
    hosts_file: str | None,
    instance: str,
    infra_image: str,
    forwarder_image: str,
    cluster_cidr: str,
    host_grace: float,
    grace_period: int,
    dry_run: bool,
    prune: bool,
    allow_mass_prune: bool,
    max_prune: int,
    concurrency: int,
) -> None:
    """Make the hosts run what the manifests say.

    Invalid manifests: nothing is applied, exit 2. A failed action is reported with its
    object and source file:line, the other actions still run, and the exit code is 1.
    """
    computed = _compute(
        sources,
        hosts_file,
        _settings(instance, infra_image, forwarder_image, cluster_cidr, host_grace),
        prune,
        grace_period,
    )
    the_plan, revision, runtimes = computed.plan, computed.revision, computed.runtimes
    _echo_styled(plan_text_lines(the_plan, revision))
    if dry_run:
        sys.exit(EXIT_OK if the_plan.in_sync else EXIT_INVALID)
    refused = refusals(the_plan, Limits(max_prune, allow_mass_prune))
    if refused:
        for reason in refused.values():
            click.echo(
                f"refused: this plan {reason} (pass --allow-mass-prune if you mean it)", err=True
            )
        sys.exit(EXIT_ERROR)
    report = _run_with_progress(the_plan, runtimes, concurrency, computed)
    _report_results(report)
    failed = len(report.failed)
    click.echo(
        f"applied {len(report.results) - failed} of {len(report.results)} action(s)"
        + (f", {failed} failed" if failed else "")
        + (
            f"; unreachable: {', '.join(sorted(the_plan.unreachable))}"
            if the_plan.unreachable
            else ""
        )
    )
    problems = failed or the_plan.unreachable or any(d.is_error for d in the_plan.problems)
    sys.exit(EXIT_INVALID if problems else EXIT_OK)


_RESOURCES = {
    "pods": "pods",
    "pod": "pods",
    "po": "pods",
    "rc": "rc",
    "replicationcontroller": "rc",
    "replicationcontrollers": "rc",
    "services": "services",
    "service": "services",
    "svc": "services",
    "hosts": "hosts",
    "host": "hosts",
    "nodes": "hosts",
}


def _print_table(rows: list[dict[str, Any]]) -> None:
    for line in table_lines(rows):
        click.echo(line)


@cli.command("get")
@click.argument("resource", type=click.Choice(sorted(_RESOURCES)), metavar="pods|rc|services|hosts")
@_hosts_option
@_instance_option
@_source_option
@click.option("-l", "--selector", default=None, help="Label selector, e.g. app=web,tier!=db.")
@click.option(
    "-o",
    "--output",
    type=click.Choice(("table", "wide", "json")),
    default="table",
    show_default=True,
)
def get_command(
    resource: str,
    hosts_file: str | None,
    instance: str,
    sources: tuple[str, ...],
    selector: str | None,
    output: str,
) -> None:
    """List pods, replication controllers, services or hosts, read from the live hosts.

    Services and the DESIRED column of rc come from the manifests (--source, default .).
    """
    try:
        parsed = parse_selector(selector)
    except SelectorError as exc:
        raise click.UsageError(str(exc)) from exc
    kind = _RESOURCES[resource]
    hosts = _load_hosts(hosts_file)
    runtimes = connect(hosts, instance)
    states = observe(runtimes)
    for name, state in sorted(states.items()):
        if not state.reachable:
            click.echo(f"warning: host {name} unreachable: {state.error}", err=True)
    pods = live_pods(states, parsed)
    wide = output == "wide"
    now = time.time()
    if kind == "pods":
        restarts: dict[str, int] = {}
        for pod in pods:
            restarts.update(runtimes[pod.host].restart_counts(pod.apps))
        rows = pod_rows(pods, now, restarts, wide)
    elif kind == "hosts":
        versions = {}
        for name, runtime in runtimes.items():
            if states[name].reachable:
                try:
                    versions[name] = runtime.engine_version()
                except Exception:  # reported through REACHABLE/ERROR already
                    versions[name] = ""
        rows = host_rows(states, hosts, versions, wide)
    else:
        manifests: list[Manifest] = []
        if sources or kind == "services":
            try:
                validation, files = load_source(list(sources) or ["."])
            except InputError as exc:
                raise click.UsageError(str(exc)) from exc
            if not validation.valid:  # rows from broken manifests would be guesses
                _print_diagnostics(validation.errors)
                objects = len(validation.manifests)
                summary = validation_summary(validation.diagnostics, objects, files)
                click.echo(f"{summary}: fix them, or name the manifests with --source", err=True)
                sys.exit(EXIT_ERROR)
            manifests = validation.manifests
        if kind == "rc":
            rows = rc_rows(pods, manifests, now, wide)
        else:
            rows = service_rows(
                [m for m in manifests if parsed.matches(m.labels)],
                pods,
                wide,
                forwarder_views(states),
            )
    if output == "json":
        click.echo(json.dumps(rows, indent=2))
    else:
        _print_table(rows)
    sys.exit(EXIT_OK if all(s.reachable for s in states.values()) else EXIT_INVALID)


@cli.command("down")
@_hosts_option
@_instance_option
@_grace_option
@click.option(
    "-l",
    "--selector",
    default=None,
    help="Only pods whose labels match (as kubectl delete -l app=NAME).",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def down_command(
    hosts_file: str | None, instance: str, grace_period: int, selector: str | None, yes: bool
) -> None:
    """Remove the pods this instance owns (all of them, or those matching -l).

    Asks first on a terminal; elsewhere --yes is required. Never touches anything
    without this instance's labels.
    """
    try:
        parsed = parse_selector(selector)
    except SelectorError as exc:
        raise click.UsageError(str(exc)) from exc
    hosts = _load_hosts(hosts_file)
    runtimes = connect(hosts, instance, grace_seconds=grace_period)
    states = observe(runtimes)
    the_plan = removal_plan(live_pods(states, parsed, forwarders=True))
    for name, state in sorted(states.items()):
        if not state.reachable:
            click.echo(f"warning: host {name} unreachable: {state.error}", err=True)
    if not the_plan.actions:
        _remove_idle_networks(runtimes, instance)
        click.echo("nothing to remove")
        sys.exit(EXIT_OK)
    _echo_styled(plan_text_lines(the_plan, ""))
    if not yes:
        if not sys.stdin.isatty():
            click.echo("refusing to remove without --yes when not on a terminal", err=True)
            sys.exit(EXIT_ERROR)
        click.confirm(f"remove {len(the_plan.actions)} pod(s)?", abort=True)
    report = apply_plan(the_plan, runtimes)
    _report_results(report)
    _remove_idle_networks(runtimes, instance)
    sys.exit(EXIT_OK if report.ok else EXIT_INVALID)


def _remove_idle_networks(runtimes: dict[str, DockerHost], instance: str) -> None:
    """The instance's network goes once nothing of the instance is left on a host."""
    network = cluster_network(instance)
    for name, state in observe(runtimes).items():
        if state.reachable and not state.containers:
            try:
                runtimes[name].remove_state_marker()
                if runtimes[name].remove_network(network):
                    click.echo(f"removed network {network.name} on {name}")
            except (HostUnavailable, ApplyError) as exc:
                click.echo(f"warning: network {network.name} on {name}: {exc}", err=True)


@cli.group("images")
def images_group() -> None:
    """Registry-free images for hosts that cannot pull."""


@images_group.command("busybox")
@click.argument("tags", nargs=-1, required=True)
@_hosts_option
@click.option("--replace", is_flag=True, help="Re-create images that already exist.")
def images_busybox_command(tags: tuple[str, ...], hosts_file: str | None, replace: bool) -> None:
    """Create images named TAGS on every host from the local static busybox.

    They hold busybox (sh, httpd, nc, wget, sleep...) and nothing else: stand-ins for the
    sample repository's applications. Images that already exist are kept unless --replace.
    """
    _import_images(hosts_file, tags, replace, with_forwarder=False)


def _import_images(
    hosts_file: str | None, tags: Sequence[str], replace: bool, with_forwarder: bool
) -> None:
    """Import each of ``tags`` on every host (kept when present unless ``replace``), a line
    per host and tag; exit 1 when any failed."""
    hosts = _load_hosts(hosts_file)
    failed = False
    for host, runtime in connect(hosts, L.DEFAULT_INSTANCE).items():
        for tag in tags:
            try:
                if not replace and runtime.has_image(tag):
                    click.echo(f"{host}: {tag} (present)")
                    continue
                runtime.import_busybox_image(tag, with_forwarder)
                click.echo(f"{host}: {tag}")
            except (HostUnavailable, ApplyError, ImageSourceError) as exc:
                click.echo(f"{host}: {tag}: {exc}", err=True)
                failed = True
    sys.exit(EXIT_INVALID if failed else EXIT_OK)


@images_group.command("forwarder")
@_hosts_option
@click.option(
    "--image",
    default=lambda: os.environ.get("RECONCILER_FORWARDER_IMAGE", default_forwarder_image()),
    show_default="reconciler/forwarder:<source digest>",
    help="Name of the image to make.",
)
@click.option("--replace", is_flag=True, help="Re-create the image if it exists.")
def images_forwarder_command(hosts_file: str | None, image: str, replace: bool) -> None:
    """Make the Service forwarder image on every host now, instead of at the first apply.

    The forwarder is compiled from the packaged C source (a C compiler and a static libc
    are needed once; RECONCILER_FORWARDER_BINARY names a prebuilt one) and imported with
    busybox, without a registry.
    """
    _import_images(hosts_file, [image], replace, with_forwarder=True)


