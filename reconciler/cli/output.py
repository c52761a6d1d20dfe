"""How the commands print: plain lines when piped, coloured (rich) ones on a terminal.

Every verb that prints diagnostics, plans or the results of actions goes through here, so
that they all look alike. Light on purpose: ``validate`` uses it, and must start without
docker, git or the HTTP server (rich itself is imported only on a terminal).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from reconciler.core.text import escape_control
from reconciler.render.diagnostics import diagnostic_line

if TYPE_CHECKING:
    from reconciler.apply.execute import ApplyReport
    from reconciler.core.model import Diagnostic, LiveVolume


def _coloured() -> bool:
    """Colour on a terminal, unless NO_COLOR is set (https://no-color.org)."""
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def print_diagnostics(diagnostics: Sequence[Diagnostic]) -> None:
    """One line each on stderr: why a command that is not ``validate`` stops or warns."""
    for d in diagnostics:
        click.echo(diagnostic_line(d), err=True)


def echo_diagnostics(diagnostics: Sequence[Diagnostic], summary: str) -> None:
    """``validate``'s report on stdout: a line per diagnostic, then the summary."""
    if _coloured():
        from rich.console import Console
        from rich.text import Text

        console = Console(highlight=False, soft_wrap=True)
        for d in diagnostics:
            line = Text(f"{d.location}: ", style="bold")
            line.append(d.severity.value, style="bold red" if d.is_error else "bold yellow")
            rest = diagnostic_line(d).split(": ", 2)[2]
            line.append(f": {rest}")
            console.print(line)
        console.print(Text(summary, style="bold red" if "invalid" in summary else "bold green"))
        return
    for d in diagnostics:
        click.echo(diagnostic_line(d))
    click.echo(summary)


def echo_styled(lines: Sequence[tuple[str, str]]) -> None:
    """Lines with a rich style each (a plan's, from ``plan_text_lines``)."""
    if _coloured():
        from rich.console import Console
        from rich.text import Text

        console = Console(highlight=False, soft_wrap=True)
        for text, style in lines:
            console.print(Text(escape_control(text), style=style))
    else:
        for text, _ in lines:
            click.echo(escape_control(text))  # reasons and errors quote manifest text


def echo_results(report: ApplyReport) -> None:
    """A line per action that ran, ``ok`` or ``FAILED`` with the manifest's file:line."""
    for result in sorted(report.results, key=lambda r: (r.action.host, r.action.pod)):
        action = result.action
        where = f" ({action.source})" if action.source else ""
        target = f"{action.owner.kind}/{action.owner.name} pod {action.pod}"
        if action.container:
            target += f" container {action.container}"
        if result.ok:
            click.echo(
                escape_control(f"  ok      {action.verb.value:<8} {target} on {action.host}")
            )
        else:
            click.echo(
                escape_control(
                    f"  FAILED  {action.verb.value:<8} {target} on {action.host}{where}: "
                    f"{result.error}"
                )
            )


def echo_volume_removals(results: Sequence[tuple[LiveVolume, str]]) -> int:
    """A line per claim volume removed (or not, and why); the number that failed."""
    failed = 0
    for volume, error in results:
        if error:
            failed += 1
            click.echo(f"  FAILED  remove   volume {volume.name} on {volume.host}: {error}")
        else:
            click.echo(f"  ok      remove   volume {volume.name} on {volume.host}")
    return failed
