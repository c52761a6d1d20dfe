"""``reconciler diff`` and ``reconciler apply``: the plan between manifests and hosts,
shown, or carried out.

Both read the same flags and compute the same plan (``cli.common.compute_plan``); ``apply``
then refuses a mass prune or a mass creation, runs the plan with a progress bar on a terminal
and reports every action.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from reconciler.apply.converge import Converged, remove_volumes
from reconciler.apply.execute import ActionResult, ApplyReport
from reconciler.apply.state import state_dir
from reconciler.cli import options as opt
from reconciler.cli.admission import admission_from_flags
from reconciler.cli.common import Computed, compute_plan, settings_from_flags
from reconciler.cli.group import EXIT_ERROR, EXIT_INVALID, EXIT_OK, cli
from reconciler.cli.output import echo_results, echo_styled, echo_volume_removals
from reconciler.plan.guards import Limits, refused
from reconciler.render.deployments import failure_line, rollout_lines
from reconciler.render.plans import plan_json, plan_markdown, plan_text_lines

if TYPE_CHECKING:
    from reconciler.apply.drive import Driven, Pacing

# Imported where they are used: a plain ``diff`` (the command run most, by people and CI)
# needs neither ``--revision``'s git nor ``--assume-down``'s nor ``apply``'s passes.


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
@opt.observe_timeout()
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
    observe_timeout: float,
) -> None:
    """Show what apply would change, without changing anything.

    Exit 0 when the hosts are in sync, 1 when changes are pending, 2 on an error
    (invalid manifests, unreadable hosts file, unreachable host). With --assume-down, the
    hosts assumed lost are no error, and pods that could not be placed are changes (1).
    """
    if revision is not None:
        from reconciler.cli.whatif import checkout_revision

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
        observe_timeout=observe_timeout,
    )
    the_plan, shown = computed.plan, computed.revision
    if assume_down:
        from reconciler.cli.whatif import what_if_json, what_if_lines, what_if_markdown
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
@opt.observe_timeout()
@click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="Run passes until every Deployment's rollout completes or fails (--no-wait: one pass).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(0),
    default=0,
    help="Stop waiting for rollouts after this many seconds (exit 1). "
    "Default: no limit but each Deployment's progressDeadlineSeconds.",
)
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
    wait: bool,
    timeout: float,
    observe_timeout: float,
) -> None:
    """Make the hosts run what the manifests say.

    Invalid manifests: nothing is applied, exit 2. A failed action is reported with its
    object and source file:line, the other actions still run, and the exit code is 1.
    Deployments roll out over several passes (each waits for the new pods to be ready);
    apply runs them until every rollout completes or fails. A failed rollout is rolled
    back to the last revision that was fully available, and the exit code is 1.
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
        observe_timeout=observe_timeout,
    )
    the_plan, revision = computed.plan, computed.revision
    echo_styled(plan_text_lines(the_plan, revision))
    if dry_run:
        sys.exit(EXIT_OK if the_plan.in_sync else EXIT_INVALID)
    limits = Limits(max_prune, allow_mass_prune, max_create, allow_mass_create)
    reasons = refused(the_plan, limits)
    if reasons:
        for reason in reasons:
            click.echo(f"refused: {reason}", err=True)
        sys.exit(EXIT_ERROR)
    from reconciler.apply.drive import Pacing

    driven = _apply_with_progress(computed, concurrency, limits, Pacing(timeout=timeout, wait=wait))
    failed = len(driven.still_failing)
    if the_plan.prune_volumes and the_plan.orphaned_volumes:
        failed += echo_volume_removals(remove_volumes(the_plan.orphaned_volumes, computed.runtimes))
    for message in driven.memory_errors:
        click.echo(f"warning: {message}", err=True)
    for reason in driven.refused:
        click.echo(f"refused: a later pass: {reason}", err=True)
    rollout_failures = driven.failed_rollouts
    for step in rollout_failures:
        click.echo(failure_line(step.status), err=True)
    if driven.timed_out:
        waiting = [s.ref for s in driven.rollouts.steps.values() if s.status.in_progress]
        click.echo(
            f"timed out after {timeout:g}s waiting for the rollout of "
            + ", ".join(f"Deployment/{r.name}" for r in waiting),
            err=True,
        )
    passes = f" in {driven.passes} passes" if driven.passes > 1 else ""
    ran = len(driven.report.results)
    click.echo(
        f"applied {ran - len(driven.report.failed)} of {ran} action(s){passes}"
        + (f", {failed} failed" if failed else "")
        + (f"; {len(rollout_failures)} rollout(s) failed" if rollout_failures else "")
        + (
            f"; unreachable: {', '.join(sorted(the_plan.unreachable))}"
            if the_plan.unreachable
            else ""
        )
    )
    problems = (
        failed
        or the_plan.unreachable
        or any(d.is_error for d in the_plan.problems)
        or rollout_failures
        or driven.timed_out
        or driven.refused
    )
    sys.exit(EXIT_INVALID if problems else EXIT_OK)


def _apply_with_progress(
    computed: Computed, concurrency: int, limits: Limits, pacing: Pacing
) -> Driven:
    """Passes until the rollouts are done (pods, then the forwarders that follow them, each
    pass), with a progress bar on a terminal and a line whenever a rollout moves."""
    from reconciler.apply.drive import drive

    the_plan = computed.plan
    shown: dict[str, str] = {}
    seen_errors: set[tuple[str, str, str, str]] = set()

    def run(
        say: Callable[[str, str], None],
        on_result: Callable[[ActionResult], None] | None = None,
        quiet: bool = False,
    ) -> Driven:
        def on_pass(done: Converged) -> None:
            if not quiet:  # a failure repeated by the next passes is shown once
                fresh = ApplyReport()
                for result in done.report.results:
                    action = result.action
                    seen = (action.verb.value, action.host, action.pod, result.error)
                    if result.ok or seen not in seen_errors:
                        fresh.results.append(result)
                        seen_errors.add(seen)
                echo_results(fresh)
            if done.followup is not None and done.followup.actions:
                say(
                    f"services: {len(done.followup.actions)} forwarder change(s) after the "
                    "pods changed",
                    "",
                )
            for text, style in rollout_lines(done.rollouts or the_plan.rollouts):
                which = text.split(":", 1)[0]
                if shown.get(which) != text:
                    shown[which] = text
                    say(text, style)

        return drive(
            the_plan,
            computed.validation.manifests,
            computed.hosts,
            computed.settings,
            computed.runtimes,
            prune=computed.prune,
            limits=limits,
            concurrency=concurrency,
            host_memory=computed.host_memory,
            now=computed.now,
            state_dir=state_dir(),
            commit=computed.revision,
            pacing=pacing,
            on_result=on_result,
            on_pass=on_pass,
            wait_ready=True,
            observer=computed.observer,
        )

    if not (sys.stdout.isatty() and the_plan.actions):
        return run(lambda text, style: echo_styled([(text, style)]))
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(
        TextColumn("applying"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}")
    ) as progress:
        task = progress.add_task("", total=len(the_plan.actions))

        def advance(result: ActionResult) -> None:
            done = progress.tasks[0].completed + 1
            progress.update(
                task,
                advance=1,
                total=max(done, progress.tasks[0].total or 0),
                description=f"{result.action.verb} {result.action.pod}",
            )

        driven = run(lambda text, style: progress.console.print(text, style=style or None),
                     advance, quiet=True)  # fmt: skip
    echo_results(driven.report)
    return driven
