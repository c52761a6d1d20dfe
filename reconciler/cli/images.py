"""``reconciler images``: make on every host, without a registry, the images it cannot pull.

``images busybox`` makes stand-in application images from the local static busybox;
``images forwarder`` makes the Service forwarder image ahead of the first apply.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from reconciler.apply.converge import connect
from reconciler.cli import options as opt
from reconciler.cli.common import hosts_from_flag
from reconciler.cli.group import EXIT_INVALID, EXIT_OK, cli
from reconciler.core import labels as L
from reconciler.core.errors import ApplyError, HostUnavailable, ImageSourceError


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
