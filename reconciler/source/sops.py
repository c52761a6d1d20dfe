"""SOPS-encrypted Secrets, opened in memory: the stage between loading and checking.

A file made by ``sops`` (https://github.com/getsops/sops) keeps its keys and structure in
clear and each value as ``ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]``: AES-256-GCM under the
file's data key, with the value's path (mapping keys joined by ``:``, plus a trailing ``:``)
as additional data. The data key is stored encrypted for each recipient under ``sops.age``
(an armored age file). ``sops.mac`` is a SHA-512 over every value in document order (or
only the encrypted ones with ``mac_only_encrypted``), as upper-case hex, encrypted the same
way with ``sops.lastmodified`` (RFC 3339) as additional data. Opening a file: decrypt the
data key with one of our age identities (``pyrage``), decrypt every value
(``cryptography``'s AES-GCM), recompute the MAC and compare. No cipher is written here.

Only ``Secret`` objects may be encrypted (their values are treated as secret everywhere
downstream; a Pod's own fields are not), with ``apiVersion``, ``kind`` and ``metadata``
left in clear so that a tree can be checked, listed and diffed without keys — the
``encrypted_regex: ^(data|stringData)$`` Flux recommends. :func:`open_secrets` turns a
``LoadResult`` into one whose Secrets are decrypted, or an error per file that cannot be
opened (file, line, and which recipients the file wants). Values never appear in a
message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from reconciler.core.model import Diagnostic, FieldPath, Manifest, Severity, format_path
from reconciler.source.keys import Keyring
from reconciler.source.load import LoadResult

SOPS_KEY = "sops"
#: sops' value format, with base64 alphabets instead of ``.+`` so that matching is linear
ENCRYPTED_VALUE = re.compile(
    r"^ENC\[AES256_GCM,data:([A-Za-z0-9+/=]*),iv:([A-Za-z0-9+/=]+),"
    r"tag:([A-Za-z0-9+/=]+),type:(str|int|float|bool|bytes|time|comment)\]$"
)
DEFAULT_UNENCRYPTED_SUFFIX = "_unencrypted"
#: sops.go: MACOnlyEncryptedInitialization
_MAC_ONLY_ENCRYPTED_INIT = bytes.fromhex(
    "8a3fd2ad54ce66527b1034f3d147be0b0b975b3bf44f72c6fdadec8176f27d69"
)
_IDENTITY_FIELDS = (("apiVersion",), ("kind",), ("metadata",))


class SopsError(Exception):
    """A file that cannot be opened: the message (never a value) and the field it is about."""

    def __init__(self, message: str, path: FieldPath = (SOPS_KEY,)) -> None:
        super().__init__(message)
        self.path = path


def is_encrypted(body: Mapping[str, Any]) -> bool:
    """Whether a document carries sops metadata (a ``sops`` mapping with a ``mac``)."""
    meta = body.get(SOPS_KEY)
    return isinstance(meta, dict) and "mac" in meta


def is_encrypted_value(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("ENC[AES256_GCM,")


# -- the rules that say which values are encrypted ------------------------------------------
def _rule(meta: Mapping[str, Any]) -> Callable[[tuple[str, ...]], bool]:
    """sops' ``shouldBeEncrypted`` for one file's metadata: at most one rule, else the
    default (every key not ending in ``_unencrypted``)."""
    rules = {
        key: meta[key]
        for key in (
            "unencrypted_suffix",
            "encrypted_suffix",
            "unencrypted_regex",
            "encrypted_regex",
            "unencrypted_comment_regex",
            "encrypted_comment_regex",
        )
        if meta.get(key)
    }
    if len(rules) > 1:
        raise SopsError(f"more than one encryption rule ({', '.join(sorted(rules))})")
    if not rules:
        rules = {"unencrypted_suffix": DEFAULT_UNENCRYPTED_SUFFIX}
    ((kind, value),) = rules.items()
    if not isinstance(value, str):
        raise SopsError(f"sops.{kind} must be a string", (SOPS_KEY, kind))
    if kind.endswith("comment_regex"):
        raise SopsError(f"sops.{kind} is not supported: use encrypted_regex", (SOPS_KEY, kind))
    if kind == "unencrypted_suffix":
        return lambda path: not any(p.endswith(value) for p in path)
    if kind == "encrypted_suffix":
        return lambda path: any(p.endswith(value) for p in path)
    try:
        pattern = re.compile(value)
    except re.error as exc:
        raise SopsError(f"sops.{kind} is not a valid regular expression: {exc}") from exc
    if kind == "unencrypted_regex":
        return lambda path: not any(pattern.search(p) for p in path)
    return lambda path: any(pattern.search(p) for p in path)


# -- values as sops turns them into bytes (for the MAC) ----------------------------------------
def _go_float(value: float) -> str:
    """Go's ``strconv.FormatFloat(v, 'f', -1, 64)``: the shortest digits, never an exponent."""
    if value != value or value in (float("inf"), float("-inf")):
        return {"nan": "NaN", "inf": "+Inf", "-inf": "-Inf"}[repr(value)]
    text = format(Decimal(repr(value)).normalize(), "f")
    return "-0" if text == "0" and str(value).startswith("-") else text


def to_bytes(value: Any) -> bytes:
    """sops' ``ToBytes``: how a value enters the MAC."""
    if isinstance(value, bool):
        return b"True" if value else b"False"
    if isinstance(value, bytes):
        return value
    if isinstance(value, int):
        return str(value).encode()
    if isinstance(value, float):
        return _go_float(value).encode()
    return str(value).encode()


def leaves(value: Any, path: tuple[str, ...] = ()) -> Any:
    """Every (path of mapping keys, value) in document order, as sops walks a tree: list
    items keep their parent's path; nulls are skipped."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, (*path, str(key)))
    elif isinstance(value, list):
        for item in value:
            yield from leaves(item, path)
    elif value is not None:
        yield path, value


# -- decryption --------------------------------------------------------------------------
def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SopsError(f"{what} is not valid base64") from exc


def decrypt_value(text: str, key: bytes, additional: str, where: FieldPath) -> Any:
    """One ``ENC[...]`` value, typed as sops typed it; "" stays "" (sops leaves empty values
    unencrypted)."""
    if text == "":
        return ""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    match = ENCRYPTED_VALUE.match(text)
    if match is None:
        raise SopsError(
            f"{format_path(where)}: not a sops value (ENC[AES256_GCM,data:…,iv:…,tag:…,type:…])",
            where,
        )
    data, iv, tag = (_b64(match[i], format_path(where)) for i in (1, 2, 3))
    if len(tag) != 16 or not iv:
        raise SopsError(f"{format_path(where)}: malformed sops value", where)
    try:
        plain = AESGCM(key).decrypt(iv, data + tag, additional.encode())
    except InvalidTag as exc:
        raise SopsError(
            f"{format_path(where)}: the value does not decrypt under this file's data key "
            "(changed by hand, or moved from another path or file)",
            where,
        ) from exc
    kind = match[4]
    if kind == "bytes":
        return plain
    text_value = plain.decode("utf-8", errors="strict")
    if kind == "int":
        return int(text_value)
    if kind == "float":
        return float(text_value)
    if kind == "bool":
        return text_value.lower() in ("true", "1", "t")
    return text_value


def _age_stanzas(meta: Mapping[str, Any]) -> list[tuple[int, Mapping[str, Any]]]:
    groups = meta.get("key_groups")
    if isinstance(groups, list) and groups:
        if len(groups) > 1:
            raise SopsError(
                "several key groups (Shamir secret sharing) are not supported: use one "
                "group of age recipients",
                (SOPS_KEY, "key_groups"),
            )
        group = groups[0] if isinstance(groups[0], dict) else {}
        stanzas = group.get("age")
    else:
        stanzas = meta.get("age")
    return [(i, s) for i, s in enumerate(stanzas or []) if isinstance(s, dict)]


def data_key(meta: Mapping[str, Any], keyring: Keyring) -> bytes:
    """The file's 32-byte data key, from the first age stanza one of our identities opens."""
    import pyrage

    stanzas = _age_stanzas(meta)
    if not stanzas:
        kinds = [k for k in ("pgp", "kms", "gcp_kms", "azure_kv", "hc_vault") if meta.get(k)]
        raise SopsError(
            "no age recipient in this file"
            + (
                f" (it has {', '.join(kinds)} keys, which the reconciler does not read)"
                if kinds
                else ""
            ),
            (SOPS_KEY,),
        )
    wanted = [str(s.get("recipient", "?")) for _, s in stanzas]
    by_index = dict(stanzas)
    ours = [i for i, s in stanzas if str(s.get("recipient")) in keyring.recipients]
    for index in ours or list(by_index):  # ours first; a recipient may be written otherwise
        enc = by_index[index].get("enc")
        if not isinstance(enc, str) or not keyring:
            continue
        try:
            key = bytes(pyrage.decrypt(enc.encode(), list(keyring.identities)))
        except Exception:  # pyrage.DecryptError: not one of ours
            continue
        if len(key) != 32:
            raise SopsError("the data key is not 32 bytes", (SOPS_KEY, "age"))
        return key
    raise SopsError(
        f"cannot decrypt: no age identity for recipient(s) {', '.join(wanted)}; "
        f"{keyring.describe()}",
        (SOPS_KEY, "age"),
    )


def _aad_time(meta: Mapping[str, Any]) -> str:
    """``lastmodified`` as Go's ``Format(time.RFC3339)`` writes it back (the MAC's AAD)."""
    raw = meta.get("lastmodified")
    if not isinstance(raw, str):
        raise SopsError("sops.lastmodified is missing", (SOPS_KEY, "lastmodified"))
    try:
        moment = datetime.fromisoformat(raw.replace("z", "Z"))
    except ValueError as exc:
        raise SopsError(
            "sops.lastmodified is not an RFC 3339 time", (SOPS_KEY, "lastmodified")
        ) from exc
    offset = moment.utcoffset()
    if offset is None:
        raise SopsError("sops.lastmodified has no time zone", (SOPS_KEY, "lastmodified"))
    minutes = int(offset.total_seconds()) // 60
    zone = "Z" if minutes == 0 else f"{'+' if minutes > 0 else '-'}{abs(minutes) // 60:02d}:"
    zone += "" if minutes == 0 else f"{abs(minutes) % 60:02d}"
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + zone


def decrypt_document(body: Mapping[str, Any], keyring: Keyring) -> dict[str, Any]:
    """The document without its ``sops`` metadata, every value decrypted, the MAC checked.

    Raises SopsError (with the field it concerns) when the file cannot be opened.
    """
    meta = body[SOPS_KEY]
    encrypted = _rule(meta)
    only_encrypted = bool(meta.get("mac_only_encrypted"))
    key = data_key(meta, keyring)
    mac = hashlib.sha512()
    if only_encrypted:
        mac.update(_MAC_ONLY_ENCRYPTED_INIT)

    def walk(value: Any, path: tuple[str, ...], at: FieldPath) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, (*path, str(k)), (*at, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, path, (*at, i)) for i, v in enumerate(value)]
        if value is None:
            return None
        is_encrypted_leaf = encrypted(path)
        if is_encrypted_leaf:
            if not isinstance(value, str):
                raise SopsError(
                    f"{format_path(at)}: expected an encrypted value, got a plain one", at
                )
            value = decrypt_value(value, key, ":".join(path) + ":", at)
        if is_encrypted_leaf or not only_encrypted:
            mac.update(to_bytes(value))
        return value

    plain = {k: walk(v, (str(k),), (k,)) for k, v in body.items() if k != SOPS_KEY}
    stored = meta.get("mac")
    if not isinstance(stored, str) or not stored:
        raise SopsError("sops.mac is missing", (SOPS_KEY, "mac"))
    expected = decrypt_value(stored, key, _aad_time(meta), (SOPS_KEY, "mac"))
    if not hmac.compare_digest(str(expected).encode(), mac.hexdigest().upper().encode()):
        raise SopsError(
            "MAC mismatch: the file was changed after it was encrypted (edit it with sops, "
            "or re-encrypt it)",
            (SOPS_KEY, "mac"),
        )
    return plain


def identity_problems(body: Mapping[str, Any]) -> list[tuple[FieldPath, str]]:
    """What keeps an encrypted document from being checked without keys: only a Secret may
    be encrypted, and its apiVersion, kind and metadata must be in clear."""
    problems: list[tuple[FieldPath, str]] = []
    for path, value in leaves({k: body.get(k) for k in ("apiVersion", "kind", "metadata")}):
        if is_encrypted_value(value):
            at: FieldPath = tuple(path)
            problems.append(
                (
                    at,
                    "is encrypted: apiVersion, kind and metadata must stay in clear (encrypt "
                    "with --encrypted-regex '^(data|stringData)$')",
                )
            )
    if not problems and body.get("kind") != "Secret":
        problems.append(
            (
                (SOPS_KEY,),
                f"only Secrets may be SOPS-encrypted, not a {body.get('kind') or 'document'}: "
                "put the values in a Secret and refer to it (secretKeyRef, envFrom, a secret "
                "volume)",
            )
        )
    return problems


def open_secrets(loaded: LoadResult, keyring: Keyring) -> LoadResult:
    """``loaded`` with every SOPS-encrypted Secret decrypted in memory; a file that cannot
    be opened is an error at its ``sops`` field (its object stays, encrypted, so that what
    refers to it is not reported as well)."""
    result = LoadResult(diagnostics=list(loaded.diagnostics), files=list(loaded.files))
    per_file: dict[str, int] = {}
    for manifest in loaded.manifests:
        per_file[manifest.file] = per_file.get(manifest.file, 0) + 1
    for manifest in loaded.manifests:
        if not is_encrypted(manifest.body):
            result.manifests.append(manifest)
            continue

        def error(path: FieldPath, message: str, m: Manifest = manifest) -> None:
            result.diagnostics.append(
                Diagnostic(
                    Severity.ERROR,
                    m.locate(path),
                    message,
                    kind=m.kind,
                    name=m.name,
                    path=format_path(path),
                )
            )

        problems = identity_problems(manifest.body)
        if per_file[manifest.file] > 1:
            problems.append(((SOPS_KEY,), "a SOPS-encrypted file must hold exactly one object"))
        for path, message in problems:
            error(path, message)
        if problems:
            result.manifests.append(manifest)  # still defined: what refers to it is not wrong
            continue
        try:
            plain = decrypt_document(manifest.body, keyring)
        except SopsError as exc:
            error(exc.path, f"SOPS: {exc}")
            result.manifests.append(manifest)
            continue
        except (UnicodeDecodeError, ValueError):  # their text would quote the value
            error((SOPS_KEY,), "SOPS: a decrypted value does not read as the type it was given")
            result.manifests.append(manifest)
            continue
        result.manifests.append(
            Manifest(plain, manifest.file, manifest.position, manifest.positions)
        )
    return result
