"""What the Slack and PagerDuty boundaries raise, sorted so the outbox knows whether to retry."""


class DeliveryError(Exception):
    """A send failed. ``transient`` errors (timeouts, 5xx, 429) are retried; the rest fail the notification."""

    def __init__(self, reason: str, *, transient: bool, status: int | None = None, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason[:500]
        self.transient = transient
        self.status = status
        self.retry_after = retry_after


def retry_after_seconds(headers) -> float | None:
    """``Retry-After`` in seconds (the delta-seconds form; the rare HTTP-date form falls back to backoff)."""
    for name in ("retry-after", "Retry-After"):
        raw = headers.get(name) if headers else None
        if raw is None:
            continue
        if isinstance(raw, list):
            raw = raw[0] if raw else ""
        try:
            return max(0.0, float(str(raw).strip()))
        except ValueError:
            return None
    return None


def is_transient_status(status: int) -> bool:
    return status in {408, 425, 429} or status >= 500
