"""``reconciler diff`` and ``reconciler apply``: the plan between manifests and hosts,
shown, or carried out.

Both read the same flags and compute the same plan (``cli.common.compute_plan``); ``apply``
then refuses a mass prune or a mass creation, runs the plan with a progress bar on a terminal
and reports every action.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import click

from reconciler.apply.converge import converge, remove_volumes
from reconciler.apply.execute import ActionResult, ApplyReport
from reconciler.apply.state import state_dir
from reconciler.cli import options as opt
from reconciler.cli.admission import admission_from_flags
from reconciler.cli.common import Computed, compute_plan, settings_from_flags
from reconciler.cli.group import EXIT_ERROR, EXIT_INVALID, EXIT_OK, cli
from reconciler.cli.output import echo_results, echo_styled, echo_volume_removals
from reconciler.cli.whatif import (
    checkout_revision,
    what_if_json,
    what_if_lines,
    what_if_markdown,
)
from reconciler.plan.guards import Limits, refused
from reconciler.render.plans import plan_json, plan_markdown, plan_text_lines


@cli.command("diff")
@opt.source_paths()
@opt.exclude()
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
@click.option(
    "--revision",
    default=None,
    metavar="REF",
    help="Plan with the manifests of this branch, tag or commit of the git source (a URL, a "
    "bare repository, or a directory in a work tree): what it would change, before merging.",
)
@click.option(
    "--assume-down",
    multiple=True,
    metavar="HOST",
    help="Plan as if HOST were lost past its grace period: where its replicas go, what "
    "cannot be placed, which Services lose endpoints (repeatable).",
)
@opt.prune_volumes()
@opt.sops_age_key_file()
@opt.policy()
@opt.max_pods()
@opt.source_limits()
def diff_command(
    sources: tuple[str, ...],
    exclude: tuple[str, ...],
    hosts_file: str | None,
    instance: str,
    infra_image: str,
    forwarder_image: str,
    cluster_cidr: str,
    host_grace: float,
    output: str,
    prune: bool,
    revision: str | None,
    assume_down: tuple[str, ...],
    prune_volumes: bool,
    sops_age_key_file: str | None,
    policy: str,
    allow_host_path: tuple[str, ...],
    max_pods: int,
    max_source_files: int,
    max_source_bytes: int,
) -> None:
    """Show what apply would change, without changing anything.

    Exit 0 when the hosts are in sync, 1 when changes are pending, 2 on an error
    (invalid manifests, unreadable hosts file, unreachable host). With --assume-down, the
    hosts assumed lost are no error, and pods that could not be placed are changes (1).
    """
    if revision is not None:
        sources = checkout_revision(sources, revision)
    computed = compute_plan(
        sources,
        hosts_file,
        settings_from_flags(instance, infra_image, forwarder_image, cluster_cidr, host_grace),
        prune,
        assume_down=assume_down,
        exclude=exclude,
        key_file=sops_age_key_file,
        prune_volumes=prune_volumes,
        list_volumes=True,  # a diff reports orphaned claims' volumes, whatever else
        admission=admission_from_flags(
            policy, allow_host_path, max_source_files, max_source_bytes, max_pods
        ),
    )
    the_plan, shown = computed.plan, computed.revision
    if output == "json":
        text = plan_json(the_plan, shown)
        click.echo(what_if_json(text, computed, assume_down) if assume_down else text)
    elif output == "markdown":
        text = plan_markdown(the_plan, shown)
        click.echo(what_if_markdown(text, computed, assume_down) if assume_down else text, nl=False)
    else:
        if assume_down:
            hosts = ", ".join(assume_down)
            echo_styled([(f"what if {hosts} were lost (past --host-grace):", "bold")])
        echo_styled(plan_text_lines(the_plan, shown))
        if assume_down:
            echo_styled([(line, "bold") for line in what_if_lines(computed, assume_down)])
    unreachable = {h for h in the_plan.unreachable if h not in assume_down}
    placing = assume_down and all(
        "cannot be placed" in d.message for d in the_plan.problems if d.is_error
    )
    errors = any(d.is_error for d in the_plan.problems) and not placing
    if unreachable or errors:
        sys.exit(EXIT_ERROR)
    changes = bool(the_plan.actions) or any(d.is_error for d in the_plan.problems)
    sys.exit(EXIT_INVALID if changes else EXIT_OK)


@cli.command("apply")
@opt.source_paths()
@opt.exclude()
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
@opt.allow_mass_create()
@opt.max_create()
@opt.concurrency()
@opt.prune_volumes()
@opt.sops_age_key_file()
@opt.policy()
@opt.max_pods()
@opt.source_limits()
def apply_command(
    sources: tuple[str, ...],
    exclude: tuple[str, ...],
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
    allow_mass_create: bool,
    max_create: int,
    concurrency: int,
    prune_volumes: bool,
    sops_age_key_file: str | None,
    policy: str,
    allow_host_path: tuple[str, ...],
    max_pods: int,
    max_source_files: int,
    max_source_bytes: int,
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
        exclude=exclude,
        key_file=sops_age_key_file,
        prune_volumes=prune_volumes,
        admission=admission_from_flags(
            policy, allow_host_path, max_source_files, max_source_bytes, max_pods
        ),
    )
    the_plan, revision = computed.plan, computed.revision
    echo_styled(plan_text_lines(the_plan, revision))
    if dry_run:
        sys.exit(EXIT_OK if the_plan.in_sync else EXIT_INVALID)
    reasons = refused(the_plan, Limits(max_prune, allow_mass_prune, max_create, allow_mass_create))
    if reasons:
        for reason in reasons:
            click.echo(f"refused: {reason}", err=True)
        sys.exit(EXIT_ERROR)
    report = _apply_with_progress(computed, concurrency)
    echo_results(report)
    failed = len(report.failed)
    if the_plan.prune_volumes and the_plan.orphaned_volumes:
        failed += echo_volume_removals(remove_volumes(the_plan.orphaned_volumes, computed.runtimes))
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
            wait_ready=True,
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
