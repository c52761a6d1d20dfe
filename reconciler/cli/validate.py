"""``reconciler validate``: check manifests offline, as CI does on every push.

The one verb that never talks to a host, so the lightest to start: it imports the loader,
the checks and the reports, and nothing of docker, git, requests or the HTTP server.
"""

from __future__ import annotations

import sys

import click

from reconciler.check.parallel import validate_paths
from reconciler.cli import options as opt
from reconciler.cli.admission import admission_from_flags
from reconciler.cli.group import EXIT_INVALID, EXIT_OK, cli
from reconciler.cli.output import echo_diagnostics
from reconciler.core.errors import InputError
from reconciler.render.diagnostics import (
    OUTPUT_FORMATS,
    github_annotation,
    validation_json,
    validation_summary,
)


@cli.command("validate")
@click.argument("paths", nargs=-1, type=str)
@opt.exclude()
@click.option(
    "-o",
    "--output",
    type=click.Choice(OUTPUT_FORMATS),
    default="text",
    show_default=True,
    help="text for people, json for tools, github for workflow annotations.",
)
@opt.policy()
@opt.source_limits()
def validate_command(
    paths: tuple[str, ...],
    exclude: tuple[str, ...],
    output: str,
    policy: str,
    allow_host_path: tuple[str, ...],
    max_source_files: int,
    max_source_bytes: int,
) -> None:
    """Check manifests under PATHS (files, directories, or - for stdin; default: .).

    Reports every error and warning at once, each with file:line:column and the field's
    path. Exit 0 when valid (warnings allowed), 1 when invalid, 2 on a usage error or
    unreadable input.
    """
    admitted = admission_from_flags(policy, allow_host_path, max_source_files, max_source_bytes)
    try:  # load_paths + validate, the files shared out among the CPUs when there are many
        result = validate_paths(
            paths or (".",),
            stdin=sys.stdin.buffer,
            limits=admitted.limits,
            policy=admitted.policy,
            exclude=exclude,
        )
    except InputError as exc:
        raise click.UsageError(str(exc)) from exc
    objects, files = result.objects, len(result.files)
    if output == "json":
        click.echo(validation_json(result.diagnostics, objects))
    elif output == "github":
        for d in result.diagnostics:
            click.echo(github_annotation(d))
        click.echo(validation_summary(result.diagnostics, objects, files))
    else:
        echo_diagnostics(result.diagnostics, validation_summary(result.diagnostics, objects, files))
    sys.exit(EXIT_OK if result.valid else EXIT_INVALID)
