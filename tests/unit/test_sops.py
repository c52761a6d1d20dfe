"""SOPS: the real tool's vector decrypts, the MAC is checked, failures name file, line and
recipient, keys come from where sops reads them; and the benchmarks' encryptor writes what
sops writes (checked against the vector)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from bench.sopsfile import encrypt, mac_of
from reconciler.check.validate import validate
from reconciler.core.errors import InputError
from reconciler.source.keys import load_keyring
from reconciler.source.load import load_paths, parse_text
from reconciler.source.sops import decrypt_value, open_secrets

VECTORS = Path(__file__).resolve().parents[1] / "fixtures" / "sops"
VECTOR = VECTORS / "age.yaml"
IDENTITY = VECTORS / "age.txt"
RECIPIENT = "age1l44xcng8dqj32nlv6d930qvvrny05hglzcv9qpc7kxjc6902ma4qufys29"


def keys() -> object:
    return load_keyring({"SOPS_AGE_KEY_FILE": str(IDENTITY)})


def test_the_vector_made_by_sops_decrypts_with_its_identity() -> None:
    opened = open_secrets(load_paths([str(VECTOR)]), keys())  # type: ignore[arg-type]
    assert opened.diagnostics == []
    (secret,) = opened.manifests
    assert secret.body["stringData"] == {"key": "value"}
    assert "sops" not in secret.body
    assert secret.locate(("stringData", "key")).line == 6  # positions survive decryption


@pytest.mark.parametrize("where", ["SOPS_AGE_KEY", "SOPS_AGE_KEY_FILE", "flag"])
def test_keys_are_read_from_where_sops_reads_them(where: str) -> None:
    identity = next(
        line for line in IDENTITY.read_text().splitlines() if line.startswith("AGE-SECRET")
    )
    if where == "SOPS_AGE_KEY":
        keyring = load_keyring({"SOPS_AGE_KEY": f"  {identity}  "})
    elif where == "SOPS_AGE_KEY_FILE":
        keyring = load_keyring({"SOPS_AGE_KEY_FILE": str(IDENTITY)})
    else:
        keyring = load_keyring({}, [str(IDENTITY)])
    assert keyring.recipients == (RECIPIENT,)
    assert identity not in repr(keyring)


def test_an_unreadable_or_malformed_key_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"(?i)no such file"):
        load_keyring({}, [str(tmp_path / "missing.txt")])
    bad = tmp_path / "bad.txt"
    bad.write_text("AGE-SECRET-KEY-1NOTAKEY\n")
    with pytest.raises(InputError, match=r"bad.txt: line 1: malformed age identity") as caught:
        load_keyring({}, [str(bad)])
    assert "NOTAKEY" not in str(caught.value)


def test_without_the_key_the_error_names_file_line_and_recipient() -> None:
    opened = open_secrets(load_paths([str(VECTOR)]), load_keyring({}))
    (error,) = opened.diagnostics
    assert error.is_error and error.location.file.endswith("age.yaml")
    assert error.location.line == 12  # sops.age
    assert RECIPIENT in error.message and "SOPS_AGE_KEY_FILE" in error.message
    assert "value" not in error.message.replace("values", "")


def test_a_wrong_key_names_the_recipient_it_lacks() -> None:
    import pyrage

    other = str(pyrage.x25519.Identity.generate())
    opened = open_secrets(load_paths([str(VECTOR)]), load_keyring({"SOPS_AGE_KEY": other}))
    (error,) = opened.diagnostics
    assert f"no age identity for recipient(s) {RECIPIENT}" in error.message


def test_a_value_changed_by_hand_is_refused() -> None:
    text = VECTOR.read_text()
    swapped = re.sub(r"key: ENC\[AES256_GCM,data:[^,]+", "key: ENC[AES256_GCM,data:mHeXsmA=", text)
    opened = open_secrets(parse_text(swapped, "tampered.yaml"), keys())  # type: ignore[arg-type]
    (error,) = opened.diagnostics
    assert "stringData.key" in error.message and "does not decrypt" in error.message


def test_the_mac_covers_the_values_in_clear_too() -> None:
    text = VECTOR.read_text().replace("name: age", "name: renamed")
    opened = open_secrets(parse_text(text, "renamed.yaml"), keys())  # type: ignore[arg-type]
    (error,) = opened.diagnostics
    assert "MAC mismatch" in error.message and error.path == "sops.mac"


def test_only_secrets_may_be_encrypted_and_their_identity_stays_in_clear() -> None:
    document = yaml.safe_load(
        encrypt(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "x"},
                "stringData": {"a": "b"},
            },
            RECIPIENT,
        )
    )
    document["kind"] = "ConfigMap"
    opened = open_secrets(parse_text(yaml.safe_dump(document), "c.yaml"), keys())  # type: ignore[arg-type]
    assert any("only Secrets may be SOPS-encrypted" in d.message for d in opened.diagnostics)


def test_validate_checks_the_structure_without_keys_and_says_so() -> None:
    result = validate(load_paths([str(VECTOR)]))
    assert result.valid
    (warning,) = result.warnings
    assert "values were not decrypted" in warning.message


def test_the_encryptor_computes_the_mac_sops_computed() -> None:
    """The vector's MAC, decrypted, equals the encryptor's MAC of the vector's plaintext."""
    opened = open_secrets(load_paths([str(VECTOR)]), keys())  # type: ignore[arg-type]
    plain = opened.manifests[0].body
    import pyrage

    meta = yaml.safe_load(VECTOR.read_text())["sops"]
    identity = pyrage.x25519.Identity.from_str(
        next(x for x in IDENTITY.read_text().split() if x.startswith("AGE-SECRET"))
    )
    data_key = pyrage.decrypt(meta["age"][0]["enc"].encode(), [identity])
    stored = decrypt_value(meta["mac"], data_key, meta["lastmodified"], ("sops", "mac"))
    assert stored == mac_of(plain)


def test_what_the_encryptor_writes_decrypts() -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db", "labels": {"app": "db"}},
        "type": "Opaque",
        "data": {"password": "aHVudGVyMg=="},
        "stringData": {"url": "postgres://app:hunter2@db/app", "empty": ""},
    }
    text = encrypt(secret, RECIPIENT)
    assert "hunter2" not in text and "aHVudGVyMg" not in text
    opened = open_secrets(parse_text(text, "db.yaml"), keys())  # type: ignore[arg-type]
    assert opened.diagnostics == []
    assert opened.manifests[0].body == secret
