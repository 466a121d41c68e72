"""The log lines on stderr: text for people (the default), or ``--log-format json``, one JSON
object per line for a log shipper. Light imports: ``main`` sets logging up before it loads
anything else.

A JSON line has ``at`` (ISO 8601, UTC), ``level``, ``logger`` and ``message``; a trade's
transition adds ``trade_id``, ``from_state``, ``state`` and ``cause``, which the engine logs
as the record's fields (``extra``) rather than leave to be parsed out of the text (a cause may
hold anything); an exception adds ``exception``, its traceback."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from typing import Any

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

TRANSITION_KEYS = ("trade_id", "from_state", "state", "cause")
"""The fields of the engine's record of each state a trade enters
(``ExecutionEngine._committed``)."""


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "at": datetime.fromtimestamp(record.created, timezone.utc)
            .isoformat()
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in TRANSITION_KEYS:
            if key in record.__dict__:
                line[key] = str(record.__dict__[key])
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line)


def handler(log_format: str) -> logging.Handler:
    """Where ``pairexec`` logs, in ``log_format`` (``text`` or ``json``)."""
    to_stderr = logging.StreamHandler(sys.stderr)
    json_lines = log_format == "json"
    to_stderr.setFormatter(JsonFormatter() if json_lines else logging.Formatter(TEXT_FORMAT))
    return to_stderr
