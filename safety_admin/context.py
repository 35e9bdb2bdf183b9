"""Per-request (and per-job) context: trace id, request id and pseudonymous user for logs and audits.

Kept in contextvars so the gateway, services and RQ jobs can read the same ids without passing them
through every call.
"""

import contextvars
import re
import secrets
from dataclasses import dataclass

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")


@dataclass(frozen=True)
class TraceContext:
    trace_id: str = ""
    request_id: str = ""
    user: str = ""


_EMPTY = TraceContext()
_current: contextvars.ContextVar[TraceContext] = contextvars.ContextVar("safety_trace", default=_EMPTY)


def current() -> TraceContext:
    return _current.get()


def bind(**fields: str) -> contextvars.Token:
    """Replace fields of the current context; returns a token for ``reset``."""
    values = current().__dict__ | {k: v for k, v in fields.items() if v is not None}
    return _current.set(TraceContext(**values))


def reset(token: contextvars.Token) -> None:
    _current.reset(token)


def new_trace_id() -> str:
    return secrets.token_hex(16)


def trace_id_from_traceparent(header: str | None) -> str:
    """The W3C trace id from a ``traceparent`` header, or a fresh one when absent or malformed."""
    match = _TRACEPARENT.match((header or "").strip().lower())
    if match and match.group(1) != "0" * 32:
        return match.group(1)
    return new_trace_id()
