"""Manifest text made safe to show: bounded quotes and escaped control characters.

Anything a manifest (or a file name, or a request) holds may end up in an error message, a
log line, ``/status`` or a terminal. Two rules keep a hostile value from doing harm there:

- **Bounded**: :func:`shown` quotes at most :data:`QUOTE_LIMIT` characters of a value and
  says how long it was, so a 10 MB label value is never echoed whole, once per diagnostic,
  into every output; :func:`bounded` cuts any text (a message, a name) to a limit.
- **One line**: :func:`escape_control` writes every control character (C0, DEL, C1, the
  Unicode line and paragraph separators, the bidirectional overrides) as an escape, so a
  name holding ``\\nINFO pass done`` cannot forge a log line, and an ANSI escape cannot
  repaint a terminal.

Both run in linear time: one ``translate`` or one slice, never a regular expression that
could backtrack.
"""

from __future__ import annotations

from typing import Any

#: Characters of a value quoted in a message; the rest is counted, not shown.
QUOTE_LIMIT = 80
#: Characters of one diagnostic's message, name or field path (a safety net: every message
#: that quotes manifest text goes through :func:`shown` first).
TEXT_LIMIT = 2000

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_table() -> dict[int, str]:
    table: dict[int, str] = {}
    controls = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)]
    # line/paragraph separators, and the bidirectional marks that reorder what a terminal shows
    controls += [0x2028, 0x2029, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
    for code in controls:
        char = chr(code)
        if char in _NAMED:
            table[code] = _NAMED[char]
        elif code < 0x100:
            table[code] = f"\\x{code:02x}"
        else:
            table[code] = f"\\u{code:04x}"
    table[ord("\\")] = "\\\\"
    return table


_ESCAPES = _escape_table()


def escape_control(text: str) -> str:
    """``text`` on one line: control characters as ``\\n``, ``\\x1b``, ``\\u2028``...

    Only text that holds a non-printable character is rewritten (and then a backslash is
    doubled too, so that an escaped line cannot be confused with text that held the escape
    sequence itself): ordinary text, a Windows path or a regular expression in a message,
    reads as written.
    """
    if text.isprintable():
        return text
    return text.translate(_ESCAPES)


def bounded(text: str, limit: int = TEXT_LIMIT) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text):,} characters in all)"


def shown(value: Any, limit: int = QUOTE_LIMIT) -> str:
    """``repr(value)`` for a message, at most ``limit`` characters of a long string (or of
    any value's text), with its length: ``'aaaa...' (10,485,760 characters)``."""
    if isinstance(value, str):
        if len(value) <= limit:
            return repr(value)
        return f"{value[:limit]!r}... ({len(value):,} characters)"
    if isinstance(value, bool | int | float) or value is None:
        text = repr(value)
        if len(text) <= limit:
            return text
        return f"{text[:limit]}... ({len(text):,} digits)"
    text = _short_repr(value, limit)
    return text if len(text) <= limit else f"{text[:limit]}..."


def _short_repr(value: Any, limit: int) -> str:
    """The repr of a list or mapping without building the whole text of a huge one."""
    if isinstance(value, dict):
        parts = []
        size = 0
        for key, item in value.items():
            part = f"{shown(key, limit)}: {shown(item, limit)}"
            parts.append(part)
            size += len(part) + 2
            if size > limit:
                break
        return "{" + ", ".join(parts) + ("..." if size > limit else "") + "}"
    if isinstance(value, list | tuple):
        parts = []
        size = 0
        for item in value:
            part = shown(item, limit)
            parts.append(part)
            size += len(part) + 2
            if size > limit:
                break
        return "[" + ", ".join(parts) + ("..." if size > limit else "") + "]"
    return repr(value)
