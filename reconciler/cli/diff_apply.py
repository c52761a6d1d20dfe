"""``reconciler diff`` and ``reconciler apply``: the plan between manifests and hosts,
shown, or carried out.

Both read the same flags and compute the same plan (``cli.common.compute_plan``); ``apply``
then refuses a mass prune, runs the plan with a progress bar on a terminal and reports
every action.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import click

from reconciler.apply.converge import converge
from reconciler.apply.execute import ActionResult, ApplyReport
from reconciler.apply.state import state_dir
from reconciler.cli import options as opt
from reconciler.cli.common import Computed, compute_plan, settings_from_flags
from reconciler.cli.group import EXIT_ERROR, EXIT_INVALID, EXIT_OK, cli
from reconciler.cli.output import echo_results, echo_styled
from reconciler.plan.guards import Limits, refusals
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
        exclude=exclude,
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
@opt.concurrency()
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
        exclude=exclude,
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
