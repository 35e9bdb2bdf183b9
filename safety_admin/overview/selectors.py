"""Reads for the staff overview: refusals and escalations over time, queues and the review SLA.

Refusals come from InferenceRequest, escalations and the SLA from review.Escalation, decisions over
time from the audit trail, queue depth from Redis.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db.models import Count, F, Min, Q
from django.db.models.fields.json import KT
from django.db.models.functions import Trunc

from audits.models import AuditEvent
from review.models import Escalation
from safety_admin.inference.models import InferenceRequest, RequestStatus
from safety_admin.metrics import QUEUES, SEVERITIES

REFUSED_STATUSES = (RequestStatus.REFUSED, RequestStatus.BLOCKED)
DECISION_ACTIONS = {"review.escalation.approved": "approved", "review.escalation.blocked": "blocked"}
UNKNOWN_CODE = "UNCLASSIFIED_REVIEW"


@dataclass(frozen=True)
class Window:
    key: str
    label: str
    span: timedelta
    unit: str  # Trunc kind: "hour" or "day"

    @property
    def step(self) -> timedelta:
        return timedelta(hours=1) if self.unit == "hour" else timedelta(days=1)


WINDOWS = {
    "24h": Window("24h", "Last 24 hours", timedelta(hours=24), "hour"),
    "7d": Window("7d", "Last 7 days", timedelta(days=7), "day"),
    "30d": Window("30d", "Last 30 days", timedelta(days=30), "day"),
}
DEFAULT_WINDOW = "24h"


def window_buckets(*, window: Window, now: datetime) -> list[datetime]:
    """The bucket starts (UTC) covering ``window`` up to ``now``, oldest first."""
    now = now.astimezone(UTC)
    last = now.replace(minute=0, second=0, microsecond=0)
    if window.unit == "day":
        last = last.replace(hour=0)
    count = int(window.span / window.step)
    return [last - window.step * i for i in range(count - 1, -1, -1)]


def _series(rows, buckets: list[datetime]) -> dict[str, list[int]]:
    index = {bucket: i for i, bucket in enumerate(buckets)}
    series: dict[str, list[int]] = {}
    for row in rows:
        pos = index.get(row["bucket"].astimezone(UTC))
        if pos is None:
            continue
        series.setdefault(row["code"] or UNKNOWN_CODE, [0] * len(buckets))[pos] += row["n"]
    return series


def refusals_over_time(*, window: Window, now: datetime) -> tuple[list[datetime], dict[str, list[int]]]:
    """Refused prompts and blocked requests (post-check or reviewer) per primary reason code and time bucket."""
    buckets = window_buckets(window=window, now=now)
    rows = (
        InferenceRequest.objects.filter(status__in=REFUSED_STATUSES, created_at__gte=buckets[0])
        .annotate(bucket=Trunc("created_at", window.unit, tzinfo=UTC), code=KT("reason_codes__0"))
        .values("bucket", "code")
        .annotate(n=Count("id"))
        .order_by()
    )
    return buckets, _series(rows, buckets)


def decisions_over_time(*, window: Window, now: datetime) -> tuple[list[datetime], dict[str, list[int]]]:
    """Review decisions (approved, blocked) per time bucket, read from the audit trail."""
    buckets = window_buckets(window=window, now=now)
    rows = (
        AuditEvent.objects.filter(action__in=DECISION_ACTIONS, created_at__gte=buckets[0])
        .annotate(bucket=Trunc("created_at", window.unit, tzinfo=UTC), code=F("action"))
        .values("bucket", "code")
        .annotate(n=Count("id"))
        .order_by()
    )
    series = _series(rows, buckets)
    return buckets, {DECISION_ACTIONS[action]: values for action, values in series.items()}


def escalations_over_time(*, window: Window, now: datetime) -> tuple[list[datetime], dict[str, list[int]]]:
    """Escalations opened per primary reason code and time bucket."""
    buckets = window_buckets(window=window, now=now)
    rows = (
        Escalation.objects.filter(created_at__gte=buckets[0])
        .annotate(bucket=Trunc("created_at", window.unit, tzinfo=UTC), code=KT("reason_codes__0"))
        .values("bucket", "code")
        .annotate(n=Count("id"))
        .order_by()
    )
    return buckets, _series(rows, buckets)


def queue_depths() -> dict[str, int | None]:
    """Jobs waiting per RQ queue; None for every queue when Redis does not answer."""
    from safety_admin.redis_conn import fast_redis

    try:
        conn = fast_redis()
        return {name: int(conn.llen(f"rq:queue:{name}")) for name in QUEUES}
    except Exception:  # the page still renders the database parts when Redis is down
        return dict.fromkeys(QUEUES)


@dataclass(frozen=True)
class SlaRow:
    severity: str
    pending: int
    overdue: int
    decided: int
    decided_in_sla: int
    oldest_pending: timedelta | None

    @property
    def oldest_pending_text(self) -> str:
        """``3 d 4 h``, ``2 h 5 min`` or ``7 min``; an en dash when nothing waits."""
        if self.oldest_pending is None:
            return "\N{EN DASH}"
        minutes = int(self.oldest_pending.total_seconds() // 60)
        days, hours, mins = minutes // 1440, minutes // 60 % 24, minutes % 60
        if days:
            return f"{days} d {hours} h"
        return f"{hours} h {mins} min" if hours else f"{mins} min"

    @property
    def in_sla_percent(self) -> int | None:
        return round(100 * self.decided_in_sla / self.decided) if self.decided else None


def review_sla(*, window: Window, now: datetime) -> list[SlaRow]:
    """Per severity: what waits (and how much is overdue), and how much decided in the window met its SLA."""
    since = now - window.span
    pending = {
        row["severity"]: row
        for row in Escalation.objects.filter(status="pending")
        .values("severity")
        .annotate(n=Count("id"), overdue=Count("id", filter=Q(due_at__lt=now)), oldest=Min("created_at"))
        .order_by()
    }
    decided = {
        row["severity"]: row
        for row in Escalation.objects.filter(decided_at__gte=since)
        .values("severity")
        .annotate(n=Count("id"), in_sla=Count("id", filter=Q(decided_at__lte=F("due_at"))))
        .order_by()
    }
    rows = []
    for severity in reversed(SEVERITIES):
        p, d = pending.get(severity, {}), decided.get(severity, {})
        rows.append(
            SlaRow(
                severity=severity,
                pending=p.get("n", 0),
                overdue=p.get("overdue", 0),
                decided=d.get("n", 0),
                decided_in_sla=d.get("in_sla", 0),
                oldest_pending=(now - p["oldest"]) if p.get("oldest") else None,
            )
        )
    return rows
