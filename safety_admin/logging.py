"""JSON log lines with trace ids; never prompt or output text unless SAFETY_LOG_CONTENT is on."""

import json
import logging
from datetime import UTC, datetime

from safety_admin import context

_STANDARD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class ContextFilter(logging.Filter):
    """Copies the current trace context onto every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = context.current()
        for key in ("trace_id", "request_id", "user"):
            if not getattr(record, key, ""):
                setattr(record, key, getattr(ctx, key))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, event, ids and any extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": getattr(record, "event", None) or record.getMessage(),
        }
        if getattr(record, "event", None):
            payload["message"] = record.getMessage()
        for key, value in vars(record).items():
            if key not in _STANDARD and key != "event" and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc_type"] = record.exc_info[0].__name__ if record.exc_info[0] else None
        return json.dumps(payload, default=str, ensure_ascii=False)
