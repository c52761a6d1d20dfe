"""The forwarder's argument and endpoint parsing, fuzzed against its sanitized build.

Bounded, with a fixed seed, so that a failure reproduces: ``bench.fuzz_forwarder`` makes the
command lines and holds the grammar in Python; ``python -m bench.fuzz --only forwarder
--inputs N --seed S`` runs longer. No Docker: the program runs with ``-n`` (it checks the
arguments and exits without opening a socket).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.fuzz_forwarder import fuzz_forwarder, reference

from .sanitized import sanitized_build

SEED = 14
INPUTS = int(os.environ.get("RECONCILER_FUZZ_INPUTS", "250"))


@pytest.fixture(scope="module")
def sanitized(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sanitized_build(tmp_path_factory.mktemp("fuzz"))


def test_the_grammar_in_python_says_what_the_comment_says() -> None:
    assert reference(["tcp:80=10.0.0.1:8080,10.0.0.2:00080", "udp:53="]) == [
        "tcp:80=10.0.0.1:8080,10.0.0.2:80",
        "udp:53=",
    ]
    for refused in (
        ["tcp:80=10.0.0.1:8080,"],  # an empty endpoint
        ["tcp:80=01.0.0.1:1"],  # a leading zero: inet_pton refuses it
        ["tcp:80=", "tcp:80="],  # the same port twice
        ["sctp:80="],
        ["tcp:0="],
        ["tcp:80=10.0.0.1:65536"],
        ["tcp:8\u0660="],  # a digit, but not an ASCII one
    ):
        assert reference(refused) is None, refused


def test_fuzzed_command_lines_are_parsed_as_the_grammar_says(sanitized: Path) -> None:
    figures = fuzz_forwarder(INPUTS, SEED, program=sanitized)
    assert figures.inputs == INPUTS
    assert figures.crashes == [], "\n".join(figures.crashes[:5])
    assert figures.notes["accepted"] > INPUTS // 20  # valid command lines were tried too
