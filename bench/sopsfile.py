"""A SOPS encryptor for the benchmarks and tests: no ``sops`` binary is packaged for this
machine, and changing a Secret in a test means encrypting it again.

It writes what sops 3.9 writes for ``sops --encrypt --age RECIPIENT --encrypted-regex
'^(data|stringData)$'`` on a YAML Secret, with the same libraries the reconciler decrypts
with (pyrage for the age stanza, cryptography's AES-256-GCM for the values, a 32-byte IV per
value like sops'), and the MAC computed as sops computes it. ``tests/unit/test_sops.py``
checks it against the real tool's output in ``tests/fixtures/sops``: the MAC of the
vector's plaintext, and a decrypt of every file it writes. Not part of the package: the
reconciler only ever decrypts.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from collections.abc import Mapping
from typing import Any

import yaml

from reconciler.source.sops import leaves, to_bytes

ENCRYPTED_REGEX = "^(data|stringData)$"
LASTMODIFIED = "2024-11-12T13:33:42Z"


def _encrypt_value(value: Any, key: bytes, additional: str) -> str:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if value == "":
        return ""
    kind = {bool: "bool", int: "int", float: "float"}.get(type(value), "str")
    plain = to_bytes(value)
    iv = os.urandom(32)
    sealed = AESGCM(key).encrypt(iv, plain, additional.encode())
    data, tag = sealed[:-16], sealed[-16:]

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    return f"ENC[AES256_GCM,data:{b64(data)},iv:{b64(iv)},tag:{b64(tag)},type:{kind}]"


def mac_of(document: Mapping[str, Any]) -> str:
    """sops' MAC of a plaintext document: SHA-512 of every value in order, upper-case hex
    (every value counts: this never writes ``mac_only_encrypted``)."""
    digest = hashlib.sha512()
    for _, value in leaves(dict(document)):
        digest.update(to_bytes(value))
    return digest.hexdigest().upper()


def encrypt(document: Mapping[str, Any], recipient: str, key: bytes | None = None) -> str:
    """``document`` (a Secret) as sops would write it for one age recipient, as YAML."""
    import pyrage

    key = key or os.urandom(32)
    rule = re.compile(ENCRYPTED_REGEX)

    def walk(value: Any, path: tuple[str, ...]) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, (*path, str(k))) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, path) for v in value]
        if value is None or not any(rule.search(p) for p in path):
            return value
        return _encrypt_value(value, key, ":".join(path) + ":")

    encrypted = {k: walk(v, (str(k),)) for k, v in document.items()}
    enc = pyrage.encrypt(key, [pyrage.x25519.Recipient.from_str(recipient)], armored=True)
    encrypted["sops"] = {
        "age": [{"recipient": recipient, "enc": enc.decode()}],
        "lastmodified": LASTMODIFIED,
        "mac": _encrypt_value(mac_of(document), key, LASTMODIFIED),
        "encrypted_regex": ENCRYPTED_REGEX,
        "version": "3.9.0",
    }
    return yaml.safe_dump(encrypted, sort_keys=False)
