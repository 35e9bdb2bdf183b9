"""Structured logs: JSON lines with trace ids; never prompt or output text unless SAFETY_LOG_CONTENT is on.

Every record gets ``trace_id``, ``request_id`` and the pseudonymous ``user`` from the current
context (safety_admin.context), so the gateway's line and the worker's line for one request carry
the same ids. Fields that would hold prompt or answer text are replaced with a length marker.
``DailyGzipFileHandler`` writes optional daily files, gzips yesterday's and keeps 30 of them.
"""

import gzip
import json
import logging
import os
import shutil
from datetime import UTC, datetime
from logging.handlers import TimedRotatingFileHandler

from safety_admin import context

_STANDARD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime", "taskName"}
# Extra fields that may carry what a person typed or what the model answered.
CONTENT_FIELDS = frozenset(
    {"user_input", "system_prompt", "prompt", "response", "output", "text", "content", "messages", "excerpt", "note"}
)
REDACTED = "[redacted: {n} chars; set SAFETY_LOG_CONTENT=1 to log content]"


def _log_content() -> bool:
    try:
        from django.conf import settings

        return bool(getattr(settings, "SAFETY_LOG_CONTENT", False))
    except Exception:  # settings not configured (a bare script): the safe default
        return False


class ContextFilter(logging.Filter):
    """Copies the current trace context onto every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = context.current()
        for key in ("trace_id", "request_id", "user"):
            if not getattr(record, key, ""):
                setattr(record, key, getattr(ctx, key))
        return True


def redact(key: str, value):
    """``value`` unless ``key`` names content and content logging is off."""
    if key in CONTENT_FIELDS and value not in (None, "") and not _log_content():
        return REDACTED.format(n=len(value) if isinstance(value, (str, list, dict)) else 0)
    return value


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, event, ids and any extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": getattr(record, "event", None) or record.getMessage(),
            "trace_id": getattr(record, "trace_id", ""),
            "request_id": getattr(record, "request_id", ""),
            "user": getattr(record, "user", ""),
            "reason_code": getattr(record, "reason_code", None),
        }
        if getattr(record, "event", None):
            payload["message"] = record.getMessage()
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in payload and not key.startswith("_"):
                payload[key] = redact(key, value)
        if record.exc_info:
            payload["exc_type"] = record.exc_info[0].__name__ if record.exc_info[0] else None
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str, ensure_ascii=False)


class DailyGzipFileHandler(TimedRotatingFileHandler):
    """Rotates at UTC midnight, gzips the finished day and keeps ``backupCount`` (default 30) days."""

    def __init__(self, filename: str, backupCount: int = 30, **kwargs):
        os.makedirs(os.path.dirname(os.path.abspath(filename)), exist_ok=True)
        kwargs.setdefault("when", "midnight")
        kwargs.setdefault("utc", True)
        kwargs.setdefault("encoding", "utf-8")
        super().__init__(filename, backupCount=backupCount, **kwargs)
        self.namer = lambda name: f"{name}.gz"
        self.rotator = _gzip_rotate


def _gzip_rotate(source: str, dest: str) -> None:
    with open(source, "rb") as src, gzip.open(dest, "wb") as out:
        shutil.copyfileobj(src, out)
    os.remove(source)
