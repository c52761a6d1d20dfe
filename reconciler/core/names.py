"""Name and label syntax, with the limits the Kubernetes API server enforces.

Every check is a pure function of one string, and a tree of manifests repeats the same
names over and over (label keys, container and port names, env var names), so each keeps
its recent answers: ``reconciler validate`` asks about 20 of these questions per object.
"""

from __future__ import annotations

import re
from functools import lru_cache

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_IANA_SVC_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_ENV_NAME = re.compile(r"^[!-<>-~]+$")  # printable ASCII but space and '='


@lru_cache(maxsize=4096)
def dns1123_label(value: str) -> str | None:
    """None when valid, else what is wrong (used for namespaces, containers, volumes)."""
    if len(value) > 63:
        return f"must be no more than 63 characters (it has {len(value)})"
    if not _DNS1123_LABEL.fullmatch(value):
        return (
            "must be a DNS-1123 label: lower-case letters, digits and '-', "
            "starting and ending with a letter or digit (e.g. 'my-name')"
        )
    return None


@lru_cache(maxsize=4096)
def dns1123_subdomain(value: str) -> str | None:
    """None when valid; Pod and ReplicationController names are DNS-1123 subdomains."""
    if len(value) > 253:
        return f"must be no more than 253 characters (it has {len(value)})"
    if not value or not all(_DNS1123_LABEL.fullmatch(part) for part in value.split(".")):
        return (
            "must be a DNS-1123 subdomain: lower-case letters, digits, '-' and '.', "
            "starting and ending with a letter or digit (e.g. 'example.com')"
        )
    return None


@lru_cache(maxsize=4096)
def dns1035_label(value: str) -> str | None:
    """None when valid; Service names are DNS-1035 labels (they become DNS names)."""
    if len(value) > 63:
        return f"must be no more than 63 characters (it has {len(value)})"
    if not _DNS1035_LABEL.fullmatch(value):
        return (
            "must be a DNS-1035 label: lower-case letters, digits and '-', starting with a "
            "letter and ending with a letter or digit (e.g. 'my-name')"
        )
    return None


@lru_cache(maxsize=4096)
def port_name(value: str) -> str | None:
    """None when valid; container port names follow IANA service-name syntax."""
    if len(value) > 15:
        return f"must be no more than 15 characters (it has {len(value)})"
    if not _IANA_SVC_NAME.fullmatch(value) or "--" in value:
        return (
            "must contain only lower-case letters, digits and single '-', "
            "starting and ending with a letter or digit"
        )
    if not any(c.isalpha() for c in value):
        return "must contain at least one letter"
    return None


@lru_cache(maxsize=4096)
def qualified_name(value: str) -> str | None:
    """None when valid; label and annotation keys: optional DNS prefix, '/', a name."""
    prefix, slash, name = value.rpartition("/")
    if slash:
        if not prefix:
            return "prefix before '/' must not be empty"
        problem = dns1123_subdomain(prefix)
        if problem:
            return f"prefix {prefix!r} {problem}"
    if not name:
        return "name part must not be empty"
    if len(name) > 63:
        return f"name part must be no more than 63 characters (it has {len(name)})"
    if not _LABEL_NAME.fullmatch(name):
        return (
            "name part must consist of letters, digits, '-', '_' or '.', starting and ending "
            "with a letter or digit"
        )
    return None


@lru_cache(maxsize=4096)
def label_value(value: str) -> str | None:
    """None when valid; label values are empty or a short name."""
    if len(value) > 63:
        return f"must be no more than 63 characters (it has {len(value)})"
    if value and not _LABEL_NAME.fullmatch(value):
        return (
            "must be empty or consist of letters, digits, '-', '_' or '.', starting and ending "
            "with a letter or digit"
        )
    return None


@lru_cache(maxsize=4096)
def env_name(value: str) -> str | None:
    """None when valid; environment variable names are printable ASCII without '='."""
    if not _ENV_NAME.fullmatch(value):
        return "must consist of printable ASCII characters other than space and '='"
    return None
