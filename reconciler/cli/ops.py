"""The commands that observe and change hosts: ``diff``, ``apply``, ``get``, ``down`` and
``images``. Imported by ``cli``'s group on first use of one of them; they register
themselves on it.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import click

from reconciler.apply.converge import apply_plan, connect, converge, load_source, observe
from reconciler.apply.execute import ActionResult, ApplyReport
from reconciler.apply.state import state_dir
from reconciler.cli import options as opt
from reconciler.cli.common import (
    Computed,
    compute_plan,
    hosts_from_flag,
    selector_from_flag,
    settings_from_flags,
    warn_unreachable,
)
from reconciler.cli.group import EXIT_ERROR, EXIT_INVALID, EXIT_OK, cli
from reconciler.cli.output import echo_results, echo_styled, print_diagnostics
from reconciler.core import labels as L
from reconciler.core.errors import ApplyError, HostUnavailable, ImageSourceError, InputError
from reconciler.core.model import Manifest
from reconciler.desire.services import cluster_network
from reconciler.engine.host import DockerHost
from reconciler.plan.guards import Limits, refusals
from reconciler.plan.planner import removal_plan
from reconciler.render.diagnostics import validation_summary
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


@cli.command("diff")
@opt.source_paths()
@opt.hosts()
@opt.instance()
@opt.infra_image()
@opt.forwarder_image()
@opt.cluster_cidr()
@opt.host_grace()
@click.option(
    "-o",
    "--output",
    type=click.Choice(("text", "json", "markdown")),
    default="text",
    show_default=True,
    help="text for people, json for tools, markdown for a PR comment.",
)
@opt.prune(help_text="Count owned objects no longer in the manifests as removals.")
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
    computed = compute_plan(
        sources,
        hosts_file,
        settings_from_flags(instance, infra_image, forwarder_image, cluster_cidr, host_grace),
        prune,
    )
    the_plan, revision = computed.plan, computed.revision
    if output == "json":
        click.echo(plan_json(the_plan, revision))
    elif output == "markdown":
        click.echo(plan_markdown(the_plan, revision), nl=False)
    else:
        echo_styled(plan_text_lines(the_plan, revision))
    if the_plan.unreachable or any(d.is_error for d in the_plan.problems):
        sys.exit(EXIT_ERROR)
    sys.exit(EXIT_OK if the_plan.in_sync else EXIT_INVALID)


@cli.command("apply")
@opt.source_paths()
@opt.hosts()
@opt.instance()
@opt.infra_image()
@opt.forwarder_image()
@opt.cluster_cidr()
@opt.host_grace()
@opt.grace_period()
@click.option("--dry-run", is_flag=True, help="Print the plan and change nothing (like diff).")
@opt.prune()
@opt.allow_mass_prune()
@opt.max_prune()
@opt.concurrency()
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
    computed = compute_plan(
        sources,
        hosts_file,
        settings_from_flags(instance, infra_image, forwarder_image, cluster_cidr, host_grace),
        prune,
        grace_period,
    )
    the_plan, revision = computed.plan, computed.revision
    echo_styled(plan_text_lines(the_plan, revision))
    if dry_run:
        sys.exit(EXIT_OK if the_plan.in_sync else EXIT_INVALID)
    refused = refusals(the_plan, Limits(max_prune, allow_mass_prune))
    if refused:
        for reason in refused.values():
            click.echo(
                f"refused: this plan {reason} (pass --allow-mass-prune if you mean it)", err=True
            )
        sys.exit(EXIT_ERROR)
    report = _apply_with_progress(computed, concurrency)
    echo_results(report)
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


def _apply_with_progress(computed: Computed, concurrency: int) -> ApplyReport:
    """Two-phase apply (pods, then the forwarders that follow them), with a progress bar
    on a terminal."""
    the_plan = computed.plan

    def run(on_result: Callable[[ActionResult], None] | None = None) -> ApplyReport:
        done = converge(
            the_plan,
            computed.validation.manifests,
            computed.hosts,
            computed.settings,
            computed.runtimes,
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


#: the names kubectl accepts for each resource -> the one this command knows it by
RESOURCES = {
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


@cli.command("get")
@click.argument("resource", type=click.Choice(sorted(RESOURCES)), metavar="pods|rc|services|hosts")
@opt.hosts()
@opt.instance()
@opt.source_paths()
@opt.selector("Label selector, e.g. app=web,tier!=db.")
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
    parsed = selector_from_flag(selector)
    kind = RESOURCES[resource]
    hosts = hosts_from_flag(hosts_file)
    runtimes = connect(hosts, instance)
    states = observe(runtimes)
    warn_unreachable(states)
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
        manifests = _manifests(sources) if sources or kind == "services" else []
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


def _manifests(sources: tuple[str, ...]) -> list[Manifest]:
    """The manifests of ``--source`` (default .); invalid ones exit 2, as rows built from
    broken manifests would be guesses."""
    try:
        validation, files = load_source(list(sources) or ["."])
    except InputError as exc:
        raise click.UsageError(str(exc)) from exc
    if not validation.valid:
        print_diagnostics(validation.errors)
        objects = len(validation.manifests)
        summary = validation_summary(validation.diagnostics, objects, files)
        click.echo(f"{summary}: fix them, or name the manifests with --source", err=True)
        sys.exit(EXIT_ERROR)
    return validation.manifests


def _print_table(rows: list[dict[str, Any]]) -> None:
    for line in table_lines(rows):
        click.echo(line)


@cli.command("down")
@opt.hosts()
@opt.instance()
@opt.grace_period()
@opt.selector("Only pods whose labels match (as kubectl delete -l app=NAME).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def down_command(
    hosts_file: str | None, instance: str, grace_period: int, selector: str | None, yes: bool
) -> None:
    """Remove the pods this instance owns (all of them, or those matching -l).

    Asks first on a terminal; elsewhere --yes is required. Never touches anything
    without this instance's labels.
    """
    parsed = selector_from_flag(selector)
    hosts = hosts_from_flag(hosts_file)
    runtimes = connect(hosts, instance, grace_seconds=grace_period)
    states = observe(runtimes)
    the_plan = removal_plan(live_pods(states, parsed, forwarders=True))
    warn_unreachable(states)
    if not the_plan.actions:
        _remove_idle_networks(runtimes, instance)
        click.echo("nothing to remove")
        sys.exit(EXIT_OK)
    echo_styled(plan_text_lines(the_plan, ""))
    if not yes:
        if not sys.stdin.isatty():
            click.echo("refusing to remove without --yes when not on a terminal", err=True)
            sys.exit(EXIT_ERROR)
        click.confirm(f"remove {len(the_plan.actions)} pod(s)?", abort=True)
    report = apply_plan(the_plan, runtimes)
    echo_results(report)
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
@opt.hosts()
@click.option("--replace", is_flag=True, help="Re-create images that already exist.")
def images_busybox_command(tags: tuple[str, ...], hosts_file: str | None, replace: bool) -> None:
    """Create images named TAGS on every host from the local static busybox.

    They hold busybox (sh, httpd, nc, wget, sleep...) and nothing else: stand-ins for the
    sample repository's applications. Images that already exist are kept unless --replace.
    """
    _import_images(hosts_file, tags, replace, with_forwarder=False)


@images_group.command("forwarder")
@opt.hosts()
@opt.forwarder_image("--image", help_text="Name of the image to make.")
@click.option("--replace", is_flag=True, help="Re-create the image if it exists.")
def images_forwarder_command(hosts_file: str | None, image: str, replace: bool) -> None:
    """Make the Service forwarder image on every host now, instead of at the first apply.

    The forwarder is compiled from the packaged C source (a C compiler and a static libc
    are needed once; RECONCILER_FORWARDER_BINARY names a prebuilt one) and imported with
    busybox, without a registry.
    """
    _import_images(hosts_file, [image], replace, with_forwarder=True)


def _import_images(
    hosts_file: str | None, tags: Sequence[str], replace: bool, with_forwarder: bool
) -> None:
    """Import each of ``tags`` on every host (kept when present unless ``replace``), a line
    per host and tag; exit 1 when any failed."""
    hosts = hosts_from_flag(hosts_file)
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
