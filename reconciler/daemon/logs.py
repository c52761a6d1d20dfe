"""The service's log lines: plain text for a terminal, one JSON object a line for a collector.

Every module logs to its own ``reconciler.*`` logger with ``extra`` fields (``revision``,
``host``, ``object``, ``pod``) where a line is about one of them; :func:`setup_logging` puts
one handler on the ``reconciler`` logger and :class:`JsonFormatter` turns those fields into
keys. Apart from the loop because the CLI sets logging up before it builds the service.

Both formats write one line per record whatever the record holds: a message quotes
manifest text (names, kinds, file names, errors that echo values), and a name holding
``\nINFO pass done`` must not forge a second line, so control characters are escaped
(``core.text.escape_control``) in the message and every field, in text and in JSON alike
(JSON's own escaping would still hand the newline to whatever displays the field).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from reconciler.core.text import escape_control


def _one_line(record: logging.LogRecord) -> str:
    """The record's message with its control characters escaped."""
    return escape_control(record.getMessage())


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with revision, host and object when a record has them."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "message": _one_line(record),
        }
        for key in ("revision", "host", "object", "pod"):
            value = getattr(record, key, None)
            if value:
                entry[key] = escape_control(value) if isinstance(value, str) else value
        return json.dumps(entry, sort_keys=False)


class TextFormatter(logging.Formatter):
    """``TIME LEVEL MESSAGE``, the message on one line (a traceback after it stays as is:
    it is the program's text, not the manifest's)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = _one_line(record)
        return super().formatMessage(record)


def setup_logging(fmt: str, level: int = logging.INFO) -> None:
    """One stderr handler on the ``reconciler`` logger, replacing any set before: JSON lines
    when ``fmt`` is ``"json"``, else text."""
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger("reconciler")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
