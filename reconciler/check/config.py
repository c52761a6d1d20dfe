"""Checks of Secrets, ConfigMaps and PersistentVolumeClaims, as the API server makes them, and
of a SOPS-encrypted Secret's structure when ``validate`` has no keys.

No message quotes a value of a Secret: a key, a type or a path, never what a key holds.
A SOPS-encrypted Secret keeps its keys in clear, so its keys, type and references are
checked like any other; its values are not (a warning says so), and ``diff``, ``apply``
and ``run``, which decrypt first (``source.sops``), check them.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from typing import Any

from reconciler.check.report import Reporter
from reconciler.core import names
from reconciler.core.errors import QuantityError
from reconciler.core.model import FieldPath, as_list, as_map
from reconciler.core.quantity import parse_quantity
from reconciler.source.sops import (
    ENCRYPTED_VALUE,
    SOPS_KEY,
    identity_problems,
    is_encrypted,
    is_encrypted_value,
)

#: Kubernetes' limit on a Secret's or ConfigMap's data: etcd's 1 MiB per object
MAX_DATA_BYTES = 1024 * 1024
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
#: keys a Secret of each type must hold (one of them, for basic-auth)
_TYPE_KEYS: dict[str, tuple[tuple[str, ...], str]] = {
    "kubernetes.io/basic-auth": (("username", "password"), "at least one of"),
    "kubernetes.io/dockerconfigjson": ((".dockerconfigjson",), "the key"),
    "kubernetes.io/dockercfg": ((".dockercfg",), "the key"),
    "kubernetes.io/tls": (("tls.crt", "tls.key"), "both of"),
    "kubernetes.io/ssh-auth": (("ssh-privatekey",), "the key"),
}


def config_key(value: str) -> str | None:
    """What is wrong with a Secret's or ConfigMap's key, or None."""
    if len(value) > 253:
        return "must be at most 253 characters"
    if not _CONFIG_KEY.match(value) or value in (".", ".."):
        return "must consist of letters, digits, '-', '_' or '.' (and not be '.' or '..')"
    return None


def _check_keys(report: Reporter, fields: tuple[str, ...], body: Mapping[str, Any]) -> None:
    seen: dict[str, str] = {}
    for field_name in fields:
        for key in as_map(body.get(field_name)):
            problem = config_key(key)
            if problem:
                report.error((field_name, key), f"key {key!r} {problem}")
            if key in seen and {seen[key], field_name} != {"data", "stringData"}:
                report.error(
                    (field_name, key), f"key {key!r} is also in {seen[key]}: a key may be in one"
                )
            seen.setdefault(key, field_name)


def _decoded(report: Reporter, path: FieldPath, value: Any) -> bytes | None:
    if not isinstance(value, str) or is_encrypted_value(value):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        report.error(path, "value is not valid base64 (use stringData for plain text)")
        return None


def _check_size(report: Reporter, size: int) -> None:
    if size > MAX_DATA_BYTES:
        report.error(
            ("metadata", "name"),
            f"holds {size:,} bytes of data, over Kubernetes' limit of {MAX_DATA_BYTES:,}",
        )


def check_secret(report: Reporter, body: Mapping[str, Any]) -> None:
    encrypted = is_encrypted(body)
    if encrypted:
        _check_sops(report, body)
    _check_keys(report, ("data", "stringData"), body)
    size = 0
    values: dict[str, bytes | None] = {}
    for key, value in as_map(body.get("data")).items():
        values[key] = _decoded(report, ("data", key), value)
    for key, value in as_map(body.get("stringData")).items():
        values[key] = value.encode() if isinstance(value, str) and not encrypted else None
    size = sum(len(v) for v in values.values() if v is not None)
    _check_size(report, size)
    secret_type = body.get("type", "Opaque")
    if not isinstance(secret_type, str):
        return
    wanted = _TYPE_KEYS.get(secret_type)
    if wanted is not None:
        keys, how = wanted
        present = [k for k in keys if k in values]
        if (how == "at least one of" and not present) or (
            how != "at least one of" and len(present) < len(keys)
        ):
            report.error(
                ("type",), f"a {secret_type} Secret needs {how} {', '.join(map(repr, keys))}"
            )
    raw = values.get(".dockerconfigjson")
    if secret_type == "kubernetes.io/dockerconfigjson" and raw is not None:
        try:
            auths = json.loads(raw).get("auths")
        except (ValueError, AttributeError):
            auths = None
        if not isinstance(auths, dict):
            report.error(
                ("data", ".dockerconfigjson"),
                'must be a Docker config.json with an "auths" mapping',
            )


def _check_sops(report: Reporter, body: Mapping[str, Any]) -> None:
    """The structure of a SOPS-encrypted Secret; its values stay unchecked without keys."""
    for path, message in identity_problems(body):
        report.error(path, message)
    meta = as_map(body.get(SOPS_KEY))
    groups = as_list(meta.get("key_groups"))
    stanzas = as_list(as_map(groups[0]).get("age")) if groups else as_list(meta.get("age"))
    if not any(isinstance(as_map(s).get("recipient"), str) for s in stanzas):
        report.error((SOPS_KEY,), "no age recipient: the reconciler opens age-encrypted files")
    if not isinstance(meta.get("mac"), str) or not ENCRYPTED_VALUE.match(meta["mac"]):
        report.error((SOPS_KEY, "mac"), "missing or malformed sops MAC")
    for field_name in ("data", "stringData"):
        for key, value in as_map(body.get(field_name)).items():
            if isinstance(value, str) and value and not ENCRYPTED_VALUE.match(value):
                report.error(
                    (field_name, key),
                    "value is not encrypted (ENC[AES256_GCM,...]) in a SOPS-encrypted Secret",
                )
    report.warn(
        (SOPS_KEY,),
        "SOPS-encrypted: keys and structure checked; the values were not decrypted here "
        "(diff, apply and run decrypt and check them)",
    )


def check_configmap(report: Reporter, body: Mapping[str, Any]) -> None:
    _check_keys(report, ("data", "binaryData"), body)
    size = sum(len(v.encode()) for v in as_map(body.get("data")).values() if isinstance(v, str))
    for key, value in as_map(body.get("binaryData")).items():
        decoded = _decoded(report, ("binaryData", key), value)
        size += len(decoded or b"")
    _check_size(report, size)


def check_claim(report: Reporter, body: Mapping[str, Any]) -> None:
    spec = as_map(body.get("spec"))
    if "accessModes" in spec and not as_list(spec.get("accessModes")):
        report.error(("spec", "accessModes"), "needs at least one access mode")
    elif "accessModes" not in spec:
        report.error(("spec", "accessModes"), "missing required field 'accessModes'")
    storage = as_map(as_map(spec.get("resources")).get("requests")).get("storage")
    if isinstance(storage, str | int | float) and not isinstance(storage, bool):
        try:
            if parse_quantity(storage) < 0:
                report.error(("spec", "resources", "requests", "storage"), "must not be negative")
        except QuantityError:
            pass  # the schema's pattern reported it
    klass = spec.get("storageClassName")
    if isinstance(klass, str) and klass:
        report.check_name(("spec", "storageClassName"), klass, names.dns1123_subdomain)
