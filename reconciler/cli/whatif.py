"""``diff``'s what-if plans: ``--revision REF`` (another commit of a git source) and
``--assume-down HOST`` (the plan after a host's loss).

``--revision`` fetches the commit into a cache of its own (``<cache>/reconciler/whatif``,
never the clones of a running service, which a checkout of another commit would disturb)
and plans with its manifests: what that commit would change on the hosts now, before it
is merged. ``--assume-down`` plans as if the hosts named had stopped answering longer than
``--host-grace`` ago (``desire.hostmemory.assume_lost``), and says which Services would
lose endpoints (``render.whatif``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import click

from reconciler.cli.common import Computed
from reconciler.core.errors import SourceFailure
from reconciler.daemon.config import RunConfig
from reconciler.render.whatif import endpoint_changes, endpoint_lines
from reconciler.source.git import GitSource, default_cache_dir, repository_of


def checkout_revision(sources: Sequence[str], ref: str) -> tuple[str, ...]:
    """The manifests directory of ``ref`` in the git source ``sources`` names (a URL, a bare
    repository, or a directory inside a work tree): ``diff``'s sources from then on."""
    from reconciler.source.git import sync  # GitPython, imported only when a diff asks

    if len(sources) > 1:
        raise click.UsageError("--revision reads one git source: give --source once")
    source = sources[0] if sources else "."
    subpath = ""
    if not RunConfig(source=source).is_git:
        found = repository_of(source)
        if found is None:
            raise click.UsageError(
                f"--revision needs a git source: {source} is neither a git URL, a bare "
                "repository nor a directory inside a git work tree"
            )
        source, subpath = found
    cache = default_cache_dir().parent / "whatif"
    try:
        checkout = sync(GitSource(source, ref=ref, path=subpath, cache_dir=cache))
    except SourceFailure as exc:
        raise click.UsageError(f"--revision {ref}: {exc}") from exc
    return (str(checkout.manifests),)


def what_if_lines(computed: Computed, assumed: Sequence[str]) -> list[str]:
    """The lines ``diff --assume-down`` prints before and after the plan (text output)."""
    if computed.desired is None:
        return []
    changes = endpoint_changes(computed.desired, computed.live, set(assumed))
    return [f"services: {line}" for line in endpoint_lines(changes)] or [
        "services: no Service loses an endpoint"
    ]


def what_if_json(text: str, computed: Computed, assumed: Sequence[str]) -> str:
    """``plan_json``'s text with ``assume_down`` and ``endpoint_changes`` added."""
    data = json.loads(text)
    data["assume_down"] = list(assumed)
    data["endpoint_changes"] = (
        endpoint_changes(computed.desired, computed.live, set(assumed))
        if computed.desired is not None
        else []
    )
    return json.dumps(data, indent=2)


def what_if_markdown(text: str, computed: Computed, assumed: Sequence[str]) -> str:
    """``plan_markdown``'s comment with the assumption said first and the Services last."""
    hosts = ", ".join(f"`{h}`" for h in assumed)
    head = f"> **What if** {hosts} were lost (past the host grace period)?\n\n"
    lines = what_if_lines(computed, assumed)
    return head + text + "\n" + "\n".join(f"- {line}" for line in lines) + "\n"
