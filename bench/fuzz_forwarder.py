"""Fuzz the forwarder's argument and endpoint parsing (``reconciler/forwarder/forwarder.c``).

Random command lines, mostly near-valid (a listener spec mutated a character at a time), go
to the AddressSanitizer + UndefinedBehaviorSanitizer build with ``-n`` (check the arguments,
print what was understood, open nothing). Two oracles:

- safety: exit 0 or 2, never a signal or a sanitizer report; a refusal is one line on
  stderr that starts with ``forwarder:``;
- meaning: :func:`reference` is the grammar written in Python from the program's comment;
  the program must accept exactly the command lines it accepts, and print the same
  listeners (a leading zero, a duplicate port, an address ``inet_pton`` refuses...).
"""

from __future__ import annotations

import ipaddress
import os
import random
import resource
import subprocess
import tempfile
import time
from pathlib import Path

from bench.fuzz import Figures
from reconciler.forwarder import build as forwarder_build

SANITIZER_FLAGS = (
    "-O1",
    "-g",
    "-std=gnu11",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-fsanitize=address,undefined",
    "-fno-omit-frame-pointer",
    "-fno-sanitize-recover=all",
)
#: The status a sanitized forwarder exits with when a sanitizer reports.
SANITIZER_EXIT = 86
SANITIZER_ENV = {
    **os.environ,
    "ASAN_OPTIONS": f"exitcode={SANITIZER_EXIT}:detect_leaks=1:abort_on_error=0",
    "UBSAN_OPTIONS": f"exitcode={SANITIZER_EXIT}:print_stacktrace=1:halt_on_error=1",
    "LSAN_OPTIONS": f"exitcode={SANITIZER_EXIT}",
}
REPORT_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")
_DIGITS = frozenset("0123456789")


def build_sanitized(directory: Path) -> tuple[Path | None, str]:
    """Compile the sanitized forwarder into ``directory``: (program, "") or (None, why)."""
    compiler = forwarder_build.find_compiler()
    if compiler is None:
        return None, "no C compiler"
    program = directory / "forwarder-sanitized"
    done = subprocess.run(
        [*compiler, *SANITIZER_FLAGS, "-o", str(program), str(forwarder_build.SOURCE)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        return None, done.stderr[-500:]
    return program, ""


def sanitizer_report(text: str) -> str:
    """The sanitizer report in a program's stderr, or "" when there is none."""
    found = [text.find(marker) for marker in REPORT_MARKERS if marker in text]
    return text[min(found) :] if found else ""


# -- the grammar, in Python ------------------------------------------------------------------
def _number(text: str, most: int) -> int | None:
    """forwarder.c's parse_number: ASCII digits only, from 1 to ``most``."""
    if not text or not set(text) <= _DIGITS:
        return None
    value = int(text)
    return value if 1 <= value <= most else None


def _endpoint(text: str) -> str | None:
    host, colon, port = text.rpartition(":")
    number = _number(port, 65535) if colon else None
    if number is None or len(host) >= 16:
        return None
    try:
        address = ipaddress.IPv4Address(host)
    except ValueError:
        return None
    if not host.isascii() or str(address) != host:
        return None  # inet_pton: dotted quads only, no leading zeros
    return f"{address}:{number}"


def reference(specs: list[str]) -> list[str] | None:
    """The listeners ``forwarder -n -- SPEC...`` prints, or None when it must refuse them."""
    out: list[str] = []
    seen: set[tuple[str, int]] = set()
    for spec in specs:
        colon, equals = spec.find(":"), spec.find("=")
        if colon < 0 or equals < 0 or colon > equals:
            return None
        protocol = spec[:colon]
        if protocol not in ("tcp", "udp"):
            return None
        port = _number(spec[colon + 1 : equals], 65535)
        if port is None or (protocol, port) in seen:
            return None
        seen.add((protocol, port))
        rest = spec[equals + 1 :]
        endpoints = [_endpoint(item) for item in rest.split(",")] if rest else []
        if any(e is None for e in endpoints):
            return None
        out.append(f"{protocol}:{port}=" + ",".join(e for e in endpoints if e))
    return out or None


# -- inputs -----------------------------------------------------------------------------------
_GOOD_ADDRESSES = ("10.0.0.1", "127.0.0.1", "255.255.255.255", "0.0.0.0", "172.31.1.20")
_BAD_ADDRESSES = ("1.2.3", "256.1.1.1", "01.2.3.4", "1.2.3.4.5", " 1.2.3.4", "::1", "1.2.3.4x", "")
_GOOD_PORTS = ("80", "1", "65535", "00080", "8080")
_BAD_PORTS = ("0", "65536", "", "8x", "-1", "9" * 25, "\u0663")
_ALPHABET = "tcpudp:=,.0123456789 -x\t\\%\u00e9"


def _pick(rng: random.Random, good: tuple[str, ...], bad: tuple[str, ...]) -> str:
    """Mostly a good piece (so that whole specs are often valid), sometimes a bad one."""
    return rng.choice(good) if rng.random() < 0.9 else rng.choice(bad)


def _spec(rng: random.Random) -> str:
    protocol = _pick(rng, ("tcp", "udp"), ("sctp", "TCP", "", "tcpx"))
    endpoints = ",".join(
        f"{_pick(rng, _GOOD_ADDRESSES, _BAD_ADDRESSES)}:{_pick(rng, _GOOD_PORTS, _BAD_PORTS)}"
        for _ in range(rng.randint(0, 4))
    )
    spec = f"{protocol}:{_pick(rng, _GOOD_PORTS, _BAD_PORTS)}={endpoints}"
    for _ in range(rng.choice((0, 0, 0, 0, 1, 2, 5))):  # sometimes, characters changed
        at = rng.randrange(len(spec) + 1)
        action = rng.randrange(3)
        if action == 0:
            spec = spec[:at] + rng.choice(_ALPHABET) + spec[at:]
        elif action == 1:
            spec = spec[:at] + spec[at + 1 :]
        else:
            spec = spec[:at] + rng.choice(_ALPHABET) + spec[at + 1 :]
    return spec


def command_line(rng: random.Random) -> list[str]:
    """Options then ``--`` then one to four listener specs (some of them long)."""
    options: list[str] = []
    for flag in rng.sample(("-t", "-u", "-i", "-d"), rng.randint(0, 4)):
        options += [flag, _pick(rng, ("1", "30", "86400"), ("86401", "0", "x", "9" * 30))]
    specs = [_spec(rng) for _ in range(rng.randint(1, 3))]
    if rng.random() < 0.05:
        specs.append("tcp:9=" + ",".join(["10.0.0.1:1"] * rng.choice((500, 5000))))
    return [*options, "--", *specs]


def _options_ok(argv: list[str]) -> bool:
    values = argv[1 : argv.index("--") : 2]
    return all(_number(value, 86400) is not None for value in values)


def fuzz_forwarder(inputs: int, seed: int, program: Path | None = None) -> Figures:
    """``inputs`` command lines through ``forwarder -n`` (sanitized; built here when no
    ``program`` is given)."""
    figures = Figures("forwarder", seed)
    with tempfile.TemporaryDirectory() as scratch:
        if program is None:
            program, why = build_sanitized(Path(scratch))
            if program is None:
                figures.notes["skipped"] = why
                return figures
        rng = random.Random(seed)
        began = time.perf_counter()
        accepted = 0
        for number in range(inputs):
            argv = command_line(rng)
            started = time.perf_counter()
            done = subprocess.run(
                [str(program), "-n", *argv],
                capture_output=True,
                env=SANITIZER_ENV,
                timeout=60,
                check=False,
            )
            figures.timed(" ".join(argv)[:200], started)
            stderr = done.stderr.decode(errors="replace")
            specs = argv[argv.index("--") + 1 :]
            expected = reference(specs) if _options_ok(argv) else None
            problem = ""
            if sanitizer_report(stderr) or done.returncode not in (0, 2):
                problem = f"exit {done.returncode}: {sanitizer_report(stderr)[:1500] or stderr}"
            elif done.returncode == 2 and not (
                stderr.startswith("forwarder: ") and stderr.count("\n") == 1
            ):
                problem = f"refusal is not one 'forwarder:' line: {stderr[:300]!r}"
            elif (done.returncode == 0) != (expected is not None):
                problem = f"exit {done.returncode}, the grammar says {expected}: {stderr[:200]}"
            elif expected is not None:
                accepted += 1
                printed = done.stdout.decode().splitlines()[:-1]  # the last line: timeouts
                if printed != expected:
                    problem = f"printed {printed[:3]}, the grammar says {expected[:3]}"
            if problem:
                figures.crashes.append(f"input {number} {argv!r}: {problem}")
        figures.seconds = time.perf_counter() - began
        figures.notes["accepted"] = accepted
        figures.max_rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return figures
