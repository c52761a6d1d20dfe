"""The age identities that open SOPS-encrypted Secrets, from where sops itself reads them.

``SOPS_AGE_KEY`` (identities, blank-separated), ``SOPS_AGE_KEY_FILE`` (a file of them, one
a line, ``#`` comments) and ``--sops-age-key-file`` (the same, named on the command line).
Only this module reads key files; the keys stay in memory (``Keyring``) and are handed to
``source.sops``, which decrypts in memory too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler.core.errors import InputError

KEY_ENV = "SOPS_AGE_KEY"
KEY_FILE_ENV = "SOPS_AGE_KEY_FILE"
_IDENTITY_PREFIX = "AGE-SECRET-KEY-1"


@dataclass(frozen=True)
class Keyring:
    """Parsed age identities, their public keys (the recipients they open) and where each
    came from, for the messages that say which recipient is missing."""

    identities: tuple[Any, ...] = field(default=(), repr=False)
    recipients: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.identities)

    def describe(self) -> str:
        if not self.identities:
            return (
                "no age identity given (set SOPS_AGE_KEY_FILE or SOPS_AGE_KEY, or pass "
                "--sops-age-key-file)"
            )
        return f"identities for {', '.join(self.recipients)} (from {', '.join(self.sources)})"


def parse_identities(text: str, where: str, *, several_a_line: bool = False) -> list[Any]:
    """Every identity in ``text``: one a line (blank lines and ``#`` comments skipped), or
    any number a line separated by blanks, as sops reads ``SOPS_AGE_KEY``. Raises
    InputError naming ``where`` and the line, never quoting the key."""
    from pyrage import x25519

    found: list[Any] = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        for word in line.split() if several_a_line else [line]:
            if not word.upper().startswith(_IDENTITY_PREFIX):
                raise InputError(
                    f"{where}: line {number} is not an age identity (AGE-SECRET-KEY-1...); "
                    "only X25519 age identities are read"
                )
            try:
                found.append(x25519.Identity.from_str(word))
            except Exception as exc:  # pyrage.IdentityError: a malformed key
                raise InputError(f"{where}: line {number}: malformed age identity") from exc
    return found


def load_keyring(environ: Mapping[str, str], key_files: Sequence[str] = ()) -> Keyring:
    """The identities of ``SOPS_AGE_KEY``, ``SOPS_AGE_KEY_FILE`` and ``key_files``.

    An unreadable or malformed key file is an InputError (a usage error: exit 2), never a
    silent empty keyring. Pure but for reading the named files.
    """
    identities: list[Any] = []
    sources: list[str] = []
    inline = environ.get(KEY_ENV, "")
    if inline.strip():
        identities += parse_identities(inline, KEY_ENV, several_a_line=True)
        sources.append(KEY_ENV)
    files = [environ[KEY_FILE_ENV]] if environ.get(KEY_FILE_ENV) else []
    for path in [*files, *key_files]:
        try:
            with open(path, encoding="utf-8") as stream:
                text = stream.read()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise InputError(f"age key file {path}: {reason}") from exc
        identities += parse_identities(text, path)
        sources.append(path)
    recipients = tuple(dict.fromkeys(str(i.to_public()) for i in identities))
    return Keyring(tuple(identities), recipients, tuple(sources))
