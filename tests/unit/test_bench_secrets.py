"""Smoke test of bench/secrets.py: its trees load clean, encrypted and not; no timing here."""

from pathlib import Path

import pyrage
import pytest

from bench.secrets import generate, main
from reconciler.check.validate import validate
from reconciler.source.keys import load_keyring
from reconciler.source.load import load_paths
from reconciler.source.sops import open_secrets


def test_the_two_trees_hold_the_same_secrets(tmp_path: Path) -> None:
    identity = pyrage.x25519.Identity.generate()
    sealed, plain = generate(tmp_path, 4, str(identity.to_public()))
    keyring = load_keyring({"SOPS_AGE_KEY": str(identity)})
    opened = validate(open_secrets(load_paths([str(sealed)]), keyring))
    clear = validate(load_paths([str(plain)]))
    assert opened.valid and clear.valid
    assert [m.body for m in opened.manifests] == [m.body for m in clear.manifests]
    assert "password" in (sealed / "secret-0000.yaml").read_text()  # keys stay in clear
    assert (
        clear.manifests[0].body["data"]["password"] not in (sealed / "secret-0000.yaml").read_text()
    )


def test_the_benchmark_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--secrets", "3", "--runs", "1", "--json"]) == 0
    assert '"encrypted_objects_per_second"' in capsys.readouterr().out
