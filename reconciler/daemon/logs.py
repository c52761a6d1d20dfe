"""The service's log lines: plain text for a terminal, one JSON object a line for a collector.

Every module logs to its own ``reconciler.*`` logger with ``extra`` fields (``revision``,
``host``, ``object``, ``pod``) where a line is about one of them; :func:`setup_logging` puts
one handler on the ``reconciler`` logger and :class:`JsonFormatter` turns those fields into
keys. Apart from the loop because the CLI sets logging up before it builds the service.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with revision, host and object when a record has them."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "message": record.getMessage(),
        }
        for key in ("revision", "host", "object", "pod"):
            value = getattr(record, key, None)
            if value:
                entry[key] = value
        return json.dumps(entry, sort_keys=False)


def setup_logging(fmt: str, level: int = logging.INFO) -> None:
    """One stderr handler on the ``reconciler`` logger, replacing any set before: JSON lines
    when ``fmt`` is ``"json"``, else text."""
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger("reconciler")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
