"""The options that several verbs share, each declared once.

``diff``, ``apply``, ``get``, ``down``, ``images`` and ``run`` all name their manifests,
hosts, instance and images the same way; ``status``, ``suspend`` and ``resume`` find the
service the same way. Each such option is a function here returning click's decorator, so
a flag's name, type, default, help and environment variable cannot drift between verbs.

Environment variables are click's ``envvar``: ``RECONCILER_`` and the flag's name
(:func:`env_var`). For ``run`` they rank above its config file (click's ``default_map``,
see ``cli.run``); flags rank above both. The settings that only the service reads from the
environment (``--prune``, ``--grace-period``...) take ``from_env=True`` there; the one-shot
verbs leave them to their flags.

Decorators apply bottom-up, so a command lists these in the order ``--help`` shows them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from reconciler.core import labels as L
from reconciler.desire.settings import DEFAULT_INFRA_IMAGE
from reconciler.forwarder.build import default_forwarder_image

F = TypeVar("F", bound=Callable[..., Any])

#: where ``reconciler run`` serves, and where ``status``/``suspend``/``resume`` look
DEFAULT_LISTEN = "127.0.0.1:9477"


def env_var(name: str) -> str:
    """The environment variable of a setting: ``host-grace`` -> ``RECONCILER_HOST_GRACE``."""
    return f"RECONCILER_{name.upper().replace('-', '_')}"


def _env_if(from_env: bool, name: str) -> str | None:
    return env_var(name) if from_env else None


# -- what to reconcile, where, as whom --------------------------------------------------------
def source_paths() -> Callable[[F], F]:
    """``--source`` of the one-shot verbs: manifest files or directories, repeatable."""
    return click.option(
        "--source",
        "sources",
        multiple=True,
        default=(),
        help="Manifests: files or directories (repeatable). Default: the current directory.",
    )


def exclude() -> Callable[[F], F]:
    """``--exclude``: files under ``--source`` that are not manifests (``source.ignore``)."""
    return click.option(
        "--exclude",
        "exclude",
        envvar=env_var("exclude"),
        multiple=True,
        default=(),
        metavar="GLOB",
        help="Leave out files under --source matching GLOB (gitignore syntax, repeatable); "
        ".sourceignore files are read too.",
    )


def source_location() -> Callable[[F], F]:
    """``--source`` of ``run``: one git repository or watched directory."""
    return click.option(
        "--source",
        envvar=env_var("source"),
        required=True,
        help="Git URL or path, or a "
        "directory to watch. URLs and bare repositories are fetched with git.",
    )


def hosts() -> Callable[[F], F]:
    return click.option(
        "--hosts",
        "hosts_file",
        envvar=env_var("hosts"),
        type=str,
        default=None,
        help="Hosts file (YAML). Default: one host from DOCKER_HOST or the local socket.",
    )


def instance() -> Callable[[F], F]:
    return click.option(
        "--instance",
        envvar=env_var("instance"),
        default=L.DEFAULT_INSTANCE,
        show_default="default (or $RECONCILER_INSTANCE)",
        help="Ownership scope: only objects labelled with this instance are seen or touched.",
    )


def selector(help_text: str) -> Callable[[F], F]:
    """``-l``: which pods a verb looks at (``get``) or removes (``down``)."""
    return click.option("-l", "--selector", default=None, help=help_text)


# -- how pods are made ------------------------------------------------------------------------
def infra_image() -> Callable[[F], F]:
    return click.option(
        "--infra-image",
        envvar=env_var("infra-image"),
        default=DEFAULT_INFRA_IMAGE,
        show_default=True,
        help="Image of the pods' infra containers; imported from busybox when a host lacks it.",
    )


def forwarder_image(
    flag: str = "--forwarder-image",
    help_text: str = "Image of the Service forwarders; built from the packaged forwarder "
    "when a host lacks it.",
) -> Callable[[F], F]:
    """The forwarder image: ``--forwarder-image``, or ``images forwarder --image``."""
    return click.option(
        flag,
        envvar=env_var("forwarder-image"),
        default=default_forwarder_image,
        show_default="reconciler/forwarder:<source digest>",
        help=help_text,
    )


def cluster_cidr() -> Callable[[F], F]:
    return click.option(
        "--cluster-cidr",
        envvar=env_var("cluster-cidr"),
        default="",
        help="Subnet of the instance's network on every host (Service cluster IPs come from "
        "its upper half). Default: a /20 in 10.64.0.0/10 derived from --instance.",
    )


def host_grace() -> Callable[[F], F]:
    return click.option(
        "--host-grace",
        envvar=env_var("host-grace"),
        type=click.FloatRange(0),
        default=60.0,
        show_default=True,
        help="Seconds an unreachable host keeps its pods before its ReplicationController "
        "replicas are placed on the other hosts (bare Pods are never moved).",
    )


def grace_period(*, from_env: bool = False, most: int | None = 3600) -> Callable[[F], F]:
    """Seconds to stop; the one-shot verbs cap it at an hour, ``run`` does not."""
    return click.option(
        "--grace-period",
        envvar=_env_if(from_env, "grace-period"),
        type=click.IntRange(0, most),
        default=10,
        show_default=True,
        help="Seconds a container gets to stop before it is killed.",
    )


# -- how much one pass may do -----------------------------------------------------------------
def prune(
    *,
    from_env: bool = False,
    help_text: str = "Remove owned objects that are no longer in the manifests.",
) -> Callable[[F], F]:
    return click.option(
        "--prune/--no-prune",
        envvar=_env_if(from_env, "prune"),
        default=True,
        show_default=True,
        help=help_text,
    )


def allow_mass_prune(*, from_env: bool = False) -> Callable[[F], F]:
    return click.option(
        "--allow-mass-prune",
        envvar=_env_if(from_env, "allow-mass-prune"),
        is_flag=True,
        help="Allow a plan that removes every owned pod on a host, or more than --max-prune.",
    )


def max_prune(*, from_env: bool = False) -> Callable[[F], F]:
    return click.option(
        "--max-prune",
        envvar=_env_if(from_env, "max-prune"),
        type=click.IntRange(0),
        default=20,
        show_default=True,
        help="Most pods one apply may prune per host without --allow-mass-prune.",
    )


def concurrency(*, from_env: bool = False) -> Callable[[F], F]:
    return click.option(
        "--concurrency",
        envvar=_env_if(from_env, "concurrency"),
        type=click.IntRange(1, 64),
        default=8,
        show_default=True,
        help="Docker operations at once per host.",
    )


def observe_timeout(*, from_env: bool = False) -> Callable[[F], F]:
    """How long a host has to answer the list call (``apply.observer``)."""
    return click.option(
        "--observe-timeout",
        envvar=_env_if(from_env, "observe-timeout"),
        type=click.FloatRange(0.1, 600),
        # apply.observer.DEFAULT_TIMEOUT, not imported: `validate` must not load apply/
        # (test_cli checks both: the import and that the two agree)
        default=10.0,
        show_default=True,
        metavar="SECONDS",
        help="Seconds each host has to answer (or 3x its usual answer time, if more); a host "
        "that has not is reported unreachable, and the other hosts are not kept waiting.",
    )


# -- the running service ----------------------------------------------------------------------
def url() -> Callable[[F], F]:
    return click.option(
        "--url",
        envvar=env_var("url"),
        default=f"http://{DEFAULT_LISTEN}",
        show_default=True,
        help="Where the service listens.",
    )


def webhook_secret(help_text: str | None = None) -> Callable[[F], F]:
    """The service's shared secret: ``run`` checks it, ``suspend``/``resume`` sign with it."""
    return click.option(
        "--webhook-secret", envvar=env_var("webhook-secret"), default="", help=help_text
    )


# -- what manifests may ask of the hosts (the operator's policy) ------------------------------
def policy() -> Callable[[F], F]:
    """``--policy`` and ``--allow-host-path``: what ``validate``, ``diff``, ``apply`` and ``run``
    let a manifest ask of the hosts (``check.policy``); the same on every verb, so that CI's
    ``validate`` refuses what the service would."""

    def decorate(function: F) -> F:
        function = click.option(
            "--allow-host-path",
            envvar=env_var("allow-host-path"),
            multiple=True,
            metavar="PREFIX",
            help="Allow hostPath volumes at or under PREFIX, at any --policy (repeatable). "
            "The Docker socket only when named exactly: --allow-host-path /var/run/docker.sock.",
        )(function)
        return click.option(
            "--policy",
            envvar=env_var("policy"),
            type=click.Choice(("privileged", "baseline", "restricted")),
            default="baseline",
            show_default=True,
            help="Pod Security Standards level manifests must meet: baseline refuses "
            "privileged containers, host namespaces, hostPath volumes and hostPorts; "
            "restricted also wants non-root users and dropped capabilities.",
        )(function)

    return decorate


def source_limits() -> Callable[[F], F]:
    """``--max-source-files`` and ``--max-source-bytes``: how much one source may hold."""

    def decorate(function: F) -> F:
        function = click.option(
            "--max-source-bytes",
            envvar=env_var("max-source-bytes"),
            type=click.IntRange(1),
            default=64 * 1024 * 1024,
            show_default=True,
            help="Most bytes of manifests one source may hold; past it, nothing is applied.",
        )(function)
        return click.option(
            "--max-source-files",
            envvar=env_var("max-source-files"),
            type=click.IntRange(1),
            default=10_000,
            show_default=True,
            help="Most manifest files one source may hold; past it, nothing is applied.",
        )(function)

    return decorate


def max_pods() -> Callable[[F], F]:
    return click.option(
        "--max-pods",
        envvar=env_var("max-pods"),
        type=click.IntRange(0),
        default=1000,
        show_default=True,
        help="Most pods the manifests may ask of this instance (Pods and replicas together).",
    )


def allow_mass_create(*, from_env: bool = False) -> Callable[[F], F]:
    return click.option(
        "--allow-mass-create",
        envvar=_env_if(from_env, "allow-mass-create"),
        is_flag=True,
        help="Allow a plan that creates more than --max-create pods on a host.",
    )


def max_create(*, from_env: bool = False) -> Callable[[F], F]:
    return click.option(
        "--max-create",
        envvar=_env_if(from_env, "max-create"),
        type=click.IntRange(0),
        default=100,
        show_default=True,
        help="Most pods one apply may create per host without --allow-mass-create.",
    )


# -- configuration and data -------------------------------------------------------------------
def sops_age_key_file(*, from_env: bool = False) -> Callable[[F], F]:
    """Where age identities for SOPS-encrypted Secrets are (besides ``SOPS_AGE_KEY_FILE``
    and ``SOPS_AGE_KEY``, which are always read, as sops reads them)."""
    return click.option(
        "--sops-age-key-file",
        envvar=_env_if(from_env, "sops-age-key-file"),
        default=None,
        help="File of age identities that open SOPS-encrypted Secrets (also read: "
        "$SOPS_AGE_KEY_FILE, $SOPS_AGE_KEY).",
    )


def prune_volumes(*, from_env: bool = False) -> Callable[[F], F]:
    return click.option(
        "--prune-volumes",
        envvar=_env_if(from_env, "prune-volumes"),
        is_flag=True,
        help="Remove the volumes of PersistentVolumeClaims no longer in the manifests "
        "(their data goes with them). Without it they are kept and reported.",
    )
