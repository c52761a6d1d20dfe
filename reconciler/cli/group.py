"""The ``reconciler`` command: verbs, flags and exit codes. No logic of its own.

Exit codes follow ``kubectl diff``: 0 fine, 1 the input (or the plan) needs attention,
2 the command could not do its job (usage error, unreadable input, internal error).

Start-up matters (``validate`` in CI runs on every push; its rate includes start-up), so
this module holds only the group, ``validate`` and the entry point. The commands that talk
to Docker live in ``cli.ops`` and ``reconciler run`` and friends in ``cli.run``; the group
imports them when one of their commands is used (or help lists them), so ``validate``
never loads docker, requests, git or the HTTP server.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any

import click

from reconciler import __version__
from reconciler.cli.output import echo_diagnostics
from reconciler.core.errors import InputError
from reconciler.render.diagnostics import (
    OUTPUT_FORMATS,
    github_annotation,
    validation_json,
    validation_summary,
)

#: command name -> the module that defines it (on ``cli``) when imported
LAZY_COMMANDS = {
    "diff": "reconciler.cli.ops",
    "apply": "reconciler.cli.ops",
    "get": "reconciler.cli.ops",
    "down": "reconciler.cli.ops",
    "images": "reconciler.cli.ops",
    "run": "reconciler.cli.run",
    "status": "reconciler.cli.run",
    "suspend": "reconciler.cli.run",
    "resume": "reconciler.cli.run",
}


class LazyGroup(click.Group):
    """A group whose commands are imported on first use (click's documented pattern)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in LAZY_COMMANDS:
            importlib.import_module(LAZY_COMMANDS[cmd_name])  # registers it on this group
        return super().get_command(ctx, cmd_name)


EXIT_OK = 0
EXIT_INVALID = 1
EXIT_ERROR = 2


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="reconciler")
def cli() -> None:
    """GitOps for plain Docker hosts.

    Reads Kubernetes-style manifests (Pod, ReplicationController, Service, apiVersion v1)
    and reconciles them onto Docker engines.
    """


@cli.command("validate")
@click.argument("paths", nargs=-1, type=str)
@click.option(
    "-o",
    "--output",
    type=click.Choice(OUTPUT_FORMATS),
    default="text",
    show_default=True,
    help="text for people, json for tools, github for workflow annotations.",
)
def validate_command(paths: tuple[str, ...], output: str) -> None:
    """Check manifests under PATHS (files, directories, or - for stdin; default: .).

    Reports every error and warning at once, each with file:line:column and the field's
    path. Exit 0 when valid (warnings allowed), 1 when invalid, 2 on a usage error or
    unreadable input.
    """
    # load_paths + validate, with the files shared out among the CPUs when there are many
    from reconciler.check.parallel import validate_paths

    try:
        result = validate_paths(paths or (".",), stdin=sys.stdin.buffer)
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
        summary = validation_summary(result.diagnostics, objects, files)
        echo_diagnostics(result.diagnostics, summary)
    sys.exit(EXIT_OK if result.valid else EXIT_INVALID)


def main(argv: Sequence[str] | None = None) -> Any:
    """Entry point: never lets a traceback reach the user."""
    try:
        return cli.main(args=list(argv) if argv is not None else None, prog_name="reconciler")
    except SystemExit:
        raise
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug of ours, not a user mistake: say so, briefly
        if os.environ.get("RECONCILER_DEBUG"):
            traceback.print_exc()
        click.echo(
            f"reconciler: internal error: {type(exc).__name__}: {exc} "
            "(set RECONCILER_DEBUG=1 for the traceback, and please report it)",
            err=True,
        )
        sys.exit(EXIT_ERROR)
