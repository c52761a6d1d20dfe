"""Benchmark loading and decrypting SOPS-encrypted Secrets, next to the same tree in clear.

Generates 1,000 Secrets (one file each, three keys), twice: encrypted for one age
recipient as sops writes them (``bench.sopsfile``, checked against the real tool's vector by
the unit tests), and the same Secrets unencrypted. Times what ``diff``, ``apply`` and ``run``
do with each tree before planning, in this process: load, decrypt (the encrypted tree only)
and validate. Prints objects/second for both and their ratio: the peer is the unencrypted
tree, measured in the same run, so the ratio is what encryption costs.

    .venv/bin/python -m bench.secrets                  # 1,000 Secrets, best of 3
    .venv/bin/python -m bench.secrets --secrets 200 --runs 5 --json

Exit 0 whatever the figures; 1 when a tree does not load clean.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import yaml

from bench.sopsfile import encrypt
from reconciler.check.validate import validate
from reconciler.source.keys import load_keyring
from reconciler.source.load import load_paths
from reconciler.source.sops import open_secrets

#: What it costs at most, by the issue's measure: encrypted objects/s at least this share
#: of the unencrypted rate would be "cheap"; printed, never asserted.
FLOOR_SHARE = 0.05


def secret(index: int) -> dict[str, object]:
    values = {
        "username": f"user-{index}",
        "password": base64.b64encode(os.urandom(18)).decode(),
        "url": f"postgres://user-{index}@db-{index % 7}:5432/app",
    }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": f"app-{index:04d}", "labels": {"app": f"app-{index % 50}"}},
        "type": "Opaque",
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()},
    }


def generate(root: Path, count: int, recipient: str) -> tuple[Path, Path]:
    """(the encrypted tree, the same Secrets in clear)."""
    sealed, plain = root / "encrypted", root / "plain"
    sealed.mkdir(parents=True)
    plain.mkdir(parents=True)
    for index in range(count):
        document = secret(index)
        name = f"secret-{index:04d}.yaml"
        (sealed / name).write_text(encrypt(document, recipient))
        (plain / name).write_text(yaml.safe_dump(document, sort_keys=False))
    return sealed, plain


def best_rate(run: Callable[[], int], runs: int) -> tuple[float, float]:
    """(objects per second of the best run, its seconds)."""
    best = float("inf")
    objects = 0
    for _ in range(runs):
        started = time.perf_counter()
        objects = run()
        best = min(best, time.perf_counter() - started)
    return objects / best, best


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.secrets", description=__doc__)
    parser.add_argument("--secrets", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="also print one JSON line")
    args = parser.parse_args(argv)
    import pyrage

    identity = pyrage.x25519.Identity.generate()
    keyring = load_keyring({"SOPS_AGE_KEY": str(identity)})
    with tempfile.TemporaryDirectory(prefix="bench-secrets-") as temporary:
        sealed, plain = generate(Path(temporary), args.secrets, str(identity.to_public()))

        def decrypted() -> int:
            result = validate(open_secrets(load_paths([str(sealed)]), keyring))
            if not result.valid or len(result.manifests) != args.secrets:
                raise SystemExit("the encrypted tree did not decrypt and validate clean")
            return len(result.manifests)

        def clear() -> int:
            result = validate(load_paths([str(plain)]))
            if not result.valid or len(result.manifests) != args.secrets:
                raise SystemExit("the unencrypted tree did not validate clean")
            return len(result.manifests)

        encrypted_rate, encrypted_seconds = best_rate(decrypted, args.runs)
        clear_rate, clear_seconds = best_rate(clear, args.runs)
    ratio = encrypted_rate / clear_rate
    print(f"{args.secrets} Secrets, best of {args.runs} (load + decrypt + validate):")
    print(f"  SOPS-encrypted: {encrypted_rate:8.0f} objects/s ({encrypted_seconds:.2f}s)")
    print(f"  unencrypted:    {clear_rate:8.0f} objects/s ({clear_seconds:.2f}s)")
    print(
        f"  ratio: {ratio:.2f} of the unencrypted rate "
        f"({'PASS' if ratio >= FLOOR_SHARE else 'FAIL'}: floor {FLOOR_SHARE:.2f})"
    )
    if args.json:
        print(
            json.dumps(
                {
                    "secrets": args.secrets,
                    "encrypted_objects_per_second": round(encrypted_rate, 1),
                    "plain_objects_per_second": round(clear_rate, 1),
                    "ratio": round(ratio, 3),
                }
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
