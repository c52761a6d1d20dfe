"""The ``reconciler`` group, its exit codes and the entry point ``main``.

Exit codes follow ``kubectl diff``: 0 fine, 1 the input (or the plan) needs attention,
2 the command could not do its job (usage error, unreadable input, internal error).

Start-up matters (``validate`` in CI runs on every push; its rate includes start-up), so
this module defines no command: each verb lives in its own module, which the group imports
when that verb is used (or help lists it) and which registers itself on ``cli``. So
``validate`` never loads docker, requests, git or the HTTP server.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any

import click

from reconciler import __version__

#: command name -> the module that defines it (on ``cli``) when imported
LAZY_COMMANDS = {
    "validate": "reconciler.cli.validate",
    "diff": "reconciler.cli.diff_apply",
    "apply": "reconciler.cli.diff_apply",
    "get": "reconciler.cli.get",
    "down": "reconciler.cli.down",
    "images": "reconciler.cli.images",
    "run": "reconciler.cli.run",
    "status": "reconciler.cli.remote",
    "suspend": "reconciler.cli.remote",
    "resume": "reconciler.cli.remote",
    "rollout": "reconciler.cli.rollout",
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


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """The version and the forwarder it serves Services with: its digest names the
    forwarder image, and where it comes from says whether a C compiler is needed."""
    if not value or ctx.resilient_parsing:
        return
    from reconciler.forwarder import build  # only here: the other verbs start without it

    click.echo(f"reconciler {__version__}")
    click.echo(f"forwarder {build.source_digest()} ({build.origin()})")
    ctx.exit(EXIT_OK)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show the version and the forwarder's digest, and exit.",
)
def cli() -> None:
    """GitOps for plain Docker hosts.

    Reads Kubernetes-style manifests (Pod, ReplicationController, Service, Secret,
    ConfigMap, PersistentVolumeClaim, apiVersion v1; Deployment, apps/v1) and reconciles
    them onto Docker engines.
    """


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
            import traceback  # only here: start-up is part of every command's cost

            traceback.print_exc()
        click.echo(
            f"reconciler: internal error: {type(exc).__name__}: {exc} "
            "(set RECONCILER_DEBUG=1 for the traceback, and please report it)",
            err=True,
        )
        sys.exit(EXIT_ERROR)
