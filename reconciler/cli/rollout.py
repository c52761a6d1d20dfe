"""``reconciler rollout status|history|undo|restart DEPLOYMENT``: a Deployment's rollout, read
from (or recorded in) the rollout memory its hosts keep.

They need no manifests: the memory on the hosts (``plan.rollout_memory``) holds the spec as
last applied, the revisions and the failure. ``status`` waits; ``undo`` and ``restart``
record a choice that the next pass (``reconciler apply`` or the service's) carries out.
"""

from __future__ import annotations

import sys
import time

import click

from reconciler.apply.converge import connect, observe
from reconciler.cli import options as opt
from reconciler.cli.common import hosts_from_flag, warn_unreachable
from reconciler.cli.group import EXIT_INVALID, EXIT_OK, cli
from reconciler.cli.output import echo_styled
from reconciler.core.model import DEFAULT_NAMESPACE, HostState, ObjectRef
from reconciler.engine.host import DockerHost
from reconciler.plan.rollout_memory import RolloutMemory, encode, read_memories, restart, undo
from reconciler.plan.rollout_status import COMPLETE, PAUSED
from reconciler.plan.rollouts import observed_pods
from reconciler.render.deployments import DeploymentView, history_rows, template_text
from reconciler.render.views import table_lines


def _common(function: click.decorators.FC) -> click.decorators.FC:
    """The flags every rollout verb takes: where the hosts are, which instance, namespace."""
    function = click.argument("deployment")(function)
    function = click.option("-n", "--namespace", default=DEFAULT_NAMESPACE, show_default=True)(
        function
    )
    function = opt.instance()(function)
    return opt.hosts()(function)


@cli.group("rollout")
def rollout_group() -> None:
    """A Deployment's rollout: status (waits), history, undo, restart."""


def _connect(
    hosts_file: str | None, instance: str
) -> tuple[dict[str, DockerHost], dict[str, HostState]]:
    runtimes = connect(hosts_from_flag(hosts_file), instance)
    states = observe(runtimes)
    return runtimes, states


def _memory(states: dict[str, HostState], ref: ObjectRef) -> RolloutMemory:
    memory = read_memories(states).get(ref)
    if memory is None:
        warn_unreachable(states)
        click.echo(
            f"Deployment {ref.name} (namespace {ref.namespace}): no rollout recorded on any "
            "reachable host (apply it first)",
            err=True,
        )
        sys.exit(EXIT_INVALID)
    return memory


def _write(
    runtimes: dict[str, DockerHost], states: dict[str, HostState], ref: ObjectRef,
    memory: RolloutMemory, image: str,
) -> None:  # fmt: skip
    """The memory on every reachable host (as a pass writes it)."""
    written = 0
    for name, state in sorted(states.items()):
        if not state.reachable:
            click.echo(f"warning: host {name} unreachable: not recorded there", err=True)
            continue
        runtimes[name].record_rollout(ref, encode(memory), memory.generation, image)
        written += 1
    if not written:
        click.echo("no host could record it", err=True)
        sys.exit(EXIT_INVALID)


@rollout_group.command("status")
@_common
@click.option(
    "--timeout",
    type=click.FloatRange(0),
    default=0,
    help="Give up after this many seconds (exit 1). Default: wait as long as it takes.",
)
@click.option(
    "--watch/--no-watch",
    "-w/-W",
    default=True,
    show_default=True,
    help="Wait for the rollout to finish (else: say where it stands once).",
)
def status_command(
    hosts_file: str | None,
    instance: str,
    namespace: str,
    deployment: str,
    timeout: float,
    watch: bool,
) -> None:
    """Wait until DEPLOYMENT's rollout is complete (exit 0); exit 1 when it failed (it was
    rolled back) or the timeout passed."""
    ref = ObjectRef("Deployment", namespace, deployment)
    runtimes = connect(hosts_from_flag(hosts_file), instance)
    started = time.monotonic()
    said = ""
    while True:
        states = observe(runtimes)
        memory = _memory(states, ref)
        view = DeploymentView(ref, memory, tuple(observed_pods(ref, states)), time.time())
        counts = view.counts
        if memory.failed is not None:
            failed = memory.failed
            running = memory.number(memory.target)
            back = (
                f"running revision {running}"
                if running != failed.number
                else "no earlier revision to roll back to"
            )
            click.echo(
                f'error: deployment "{deployment}" rollout of revision {failed.number} failed '
                f"({failed.source}): {failed.reason}; {back}",
                err=True,
            )
            sys.exit(EXIT_INVALID)
        done = (
            memory.state == COMPLETE
            and counts["updated"] == view.replicas
            and counts["available"] == view.replicas
            and counts["replicas"] == view.replicas
        )
        if done:
            click.echo(f'deployment "{deployment}" successfully rolled out')
            sys.exit(EXIT_OK)
        if memory.state == PAUSED:
            click.echo(f'deployment "{deployment}" is paused', err=True)
            sys.exit(EXIT_INVALID)
        text = (
            f'Waiting for deployment "{deployment}" rollout to finish: {counts["updated"]} of '
            f"{view.replicas} updated replicas, {counts['available']} available, "
            f"{counts['replicas']} in all..."
        )
        if text != said:
            click.echo(text)
            said = text
        if not watch:
            sys.exit(EXIT_INVALID)
        if timeout and time.monotonic() - started >= timeout:
            click.echo(f"error: timed out after {timeout:g}s waiting for the rollout", err=True)
            sys.exit(EXIT_INVALID)
        time.sleep(0.5)


@rollout_group.command("history")
@_common
@click.option(
    "--revision", type=click.IntRange(1), default=None, help="Show this revision's template."
)
def history_command(
    hosts_file: str | None, instance: str, namespace: str, deployment: str, revision: int | None
) -> None:
    """DEPLOYMENT's revisions (as many as revisionHistoryLimit keeps), oldest first."""
    ref = ObjectRef("Deployment", namespace, deployment)
    _, states = _connect(hosts_file, instance)
    memory = _memory(states, ref)
    if revision is not None:
        found = next((r for r in memory.revisions if r.number == revision), None)
        if found is None:
            click.echo(f"error: no revision {revision} in the history", err=True)
            sys.exit(EXIT_INVALID)
        click.echo(f"deployment {deployment} revision {found.number} ({found.hash})")
        click.echo(template_text(found.template))
        sys.exit(EXIT_OK)
    click.echo(f"deployment {deployment}")
    for line in table_lines(history_rows(memory, time.time())):
        click.echo(line)
    sys.exit(EXIT_OK)


@rollout_group.command("undo")
@_common
@opt.infra_image()
@click.option(
    "--to-revision", type=click.IntRange(0), default=0, help="0 (default): the previous one."
)
def undo_command(
    hosts_file: str | None,
    instance: str,
    namespace: str,
    deployment: str,
    infra_image: str,
    to_revision: int,
) -> None:
    """Roll DEPLOYMENT back to an earlier revision, from the next pass on, for as long as
    the manifest's template stays as it is (a new commit wins)."""
    ref = ObjectRef("Deployment", namespace, deployment)
    runtimes, states = _connect(hosts_file, instance)
    memory = _memory(states, ref)
    try:
        pinned, chosen = undo(memory, to_revision)
    except ValueError as exc:
        click.echo(f"error: deployment {deployment}: {exc}", err=True)
        sys.exit(EXIT_INVALID)
    _write(runtimes, states, ref, pinned, infra_image)
    echo_styled(
        [
            (
                f"deployment.apps/{deployment} rolled back to revision {chosen.number} "
                f"({chosen.hash}): the next pass (reconciler apply, or the service's) rolls "
                "it out; a change of the manifest's template ends it",
                "green",
            )
        ]
    )
    sys.exit(EXIT_OK)


@rollout_group.command("restart")
@_common
@opt.infra_image()
def restart_command(
    hosts_file: str | None, instance: str, namespace: str, deployment: str, infra_image: str
) -> None:
    """Replace every pod of DEPLOYMENT under its strategy, from the next pass on (a new
    revision of the same template); a template whose rollout failed is tried again."""
    ref = ObjectRef("Deployment", namespace, deployment)
    runtimes, states = _connect(hosts_file, instance)
    memory = _memory(states, ref)
    restarted = restart(memory, time.time())
    _write(runtimes, states, ref, restarted, infra_image)
    click.echo(
        f"deployment.apps/{deployment} restarted: the next pass (reconciler apply, or the "
        "service's) replaces its pods"
    )
    sys.exit(EXIT_OK)
