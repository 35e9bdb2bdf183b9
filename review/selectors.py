"""Reads for escalations: the queue, the detail screen and the reviewer stats."""

import itertools
import statistics
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Count, Max, Min, Q
from django.db.models.functions import TruncDate
from django.http import Http404
from django.utils import timezone

from audits.models import AuditEvent
from review.models import QUEUE_KEY_RANK_STEP, SEVERITY_ORDER, Escalation, EscalationStatus
from safety_admin.accounts.models import TIER_MAX_SEVERITY, tier_allows_severity
from safety_admin.inference.models import InferenceRequest, RequestStatus

QUEUE_PAGE_SIZE = 30
QUEUE_COUNT_CAP = 1_000
AGE_FILTERS = {"1h": timedelta(hours=1), "4h": timedelta(hours=4), "24h": timedelta(hours=24), "7d": timedelta(days=7)}
REQUESTER_WINDOW = timedelta(days=30)
STATS_DAYS = 14


def escalation_for_request(*, request_id) -> Escalation | None:
    """The open escalation of a request, else its latest one."""
    qs = Escalation.objects.filter(request_id=request_id).order_by("-created_at")
    return qs.filter(status="pending").first() or qs.first()


def allowed_severities(tier: str) -> list[str]:
    """Severities a tier may see, highest first."""
    top = TIER_MAX_SEVERITY.get(tier, -1)
    return [sev for sev, rank in sorted(SEVERITY_ORDER.items(), key=lambda kv: -kv[1]) if rank <= top]


def _key_range(severity: str) -> tuple[int, int]:
    low = (3 - SEVERITY_ORDER[severity]) * QUEUE_KEY_RANK_STEP
    return low, low + QUEUE_KEY_RANK_STEP


def sla_state(escalation: Escalation, now) -> str:
    """``overdue``, ``due-soon`` or ``""`` for a pending escalation."""
    if escalation.status != EscalationStatus.PENDING:
        return ""
    if escalation.due_at <= now:
        return "overdue"
    window = timedelta(minutes=settings.REVIEW_SLA_MINUTES[escalation.severity] * settings.REVIEW_DUE_SOON_FRACTION)
    return "due-soon" if escalation.due_at - now <= window else ""


@dataclass
class QueuePage:
    items: list[Escalation]
    next_cursor: str
    counts: dict[str, int]


def queue_counts(*, tier: str) -> dict[str, int]:
    """Pending escalations per severity the tier may see, each counted up to ``QUEUE_COUNT_CAP + 1``.

    A capped count reads at most that many index entries, so the queue stays fast at any depth;
    the screen shows "1000+" beyond the cap (exact figures are on the stats page).
    """
    sevs = allowed_severities(tier)
    if not sevs:
        return {}
    # One round trip: a scalar subquery per severity, each a LIMITed scan of the queue index.
    table = Escalation._meta.db_table
    one = f"(SELECT COUNT(*) FROM (SELECT 1 FROM {table} WHERE status = %s AND severity_rank = %s LIMIT %s) AS c)"
    params = []
    for sev in sevs:
        params += [EscalationStatus.PENDING.value, SEVERITY_ORDER[sev], QUEUE_COUNT_CAP + 1]
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join([one] * len(sevs)), params)
        row = cursor.fetchone()
    return dict(zip(sevs, row, strict=True))


def escalation_queue(*, tier: str, filters: dict[str, str], after: str = "", limit: int = QUEUE_PAGE_SIZE) -> QueuePage:
    """One page of the queue, sorted by severity then age, with keyset pagination on ``queue_key``.

    ``filters`` holds already-validated values for status, severity, reason, direction and age.
    Deep pages cost the same as the first: the cursor is a range start on the (status, queue_key, id) index.
    """
    now = timezone.now()
    max_rank = TIER_MAX_SEVERITY.get(tier, -1)
    qs = Escalation.objects.filter(
        status=filters.get("status") or EscalationStatus.PENDING,
        queue_key__gte=(3 - max_rank) * QUEUE_KEY_RANK_STEP,
        severity_rank__lte=max_rank,
    )
    if filters.get("severity"):
        low, high = _key_range(filters["severity"])
        qs = qs.filter(queue_key__gte=low, queue_key__lt=high)
    if filters.get("reason"):
        if connection.vendor == "postgresql":
            qs = qs.filter(reason_codes__contains=[filters["reason"]])
        else:
            qs = qs.filter(reason_codes__icontains=f'"{filters["reason"]}"')
    if filters.get("direction"):
        qs = qs.filter(direction=filters["direction"])
    if filters.get("age") in AGE_FILTERS:
        qs = qs.filter(created_at__lte=now - AGE_FILTERS[filters["age"]])
    if after:
        key, _, pk = after.partition(".")
        if key.lstrip("-").isdigit() and pk.isdigit():
            # The redundant >= bound makes the OR an index range start rather than a filter over skipped rows.
            qs = qs.filter(queue_key__gte=int(key)).filter(
                Q(queue_key__gt=int(key)) | Q(queue_key=int(key), id__gt=int(pk))
            )
    rows = list(qs.select_related("claimed_by", "decided_by").defer("hits").order_by("queue_key", "id")[: limit + 1])
    items = rows[:limit]
    for item in items:
        item.sla = sla_state(item, now)
        item.claim_live = bool(item.claimed_by_id and item.claim_expires_at and item.claim_expires_at > now)
    next_cursor = f"{items[-1].queue_key}.{items[-1].pk}" if len(rows) > limit else ""
    return QueuePage(items=items, next_cursor=next_cursor, counts=queue_counts(tier=tier))


def escalation_get_for_reviewer(*, escalation_id: int, tier: str) -> Escalation:
    """The escalation, or Http404 when it does not exist or is above the reviewer's tier."""
    escalation = (
        Escalation.objects.select_related("request", "claimed_by", "decided_by").filter(pk=escalation_id).first()
    )
    if escalation is None or not tier_allows_severity(tier, escalation.severity):
        raise Http404("No such escalation.")
    return escalation


@dataclass
class Segment:
    text: str
    hits: list[dict] = field(default_factory=list)
    ends: list[dict] = field(default_factory=list)  # hits whose span ends here (for the in-place label)


def highlight_segments(text: str, hits: list[dict]) -> list[Segment]:
    """Split ``text`` at hit span boundaries; each segment carries the hits covering it.

    Returns plain strings and dicts: the template escapes the text, so model output never becomes markup.
    Spans outside the text (e.g. after truncation) are clamped or dropped.
    """
    spans = []
    for hit in hits:
        span = hit.get("span") or []
        if len(span) != 2 or not all(isinstance(x, int) for x in span):
            continue
        start, end = max(0, span[0]), min(len(text), span[1])
        if start < end:
            spans.append((start, end, hit))
    bounds = sorted({0, len(text), *(s for s, _, _ in spans), *(e for _, e, _ in spans)})
    segments = []
    for start, end in itertools.pairwise(bounds):
        covering = [hit for s, e, hit in spans if s <= start and end <= e]
        ends = [hit for s, e, hit in spans if e == end]
        segments.append(Segment(text=text[start:end], hits=covering, ends=ends))
    return segments


def escalation_hits(escalation: Escalation) -> list[dict]:
    """Every hit of the request (prompt and output) plus the escalation's own, without duplicates."""
    seen, merged = set(), []
    for hit in [*escalation.request.hits, *escalation.hits]:
        key = (hit.get("rule_id"), hit.get("field"), tuple(hit.get("span") or ()))
        if key not in seen:
            seen.add(key)
            merged.append({**hit, "n": len(merged) + 1})
    return merged


def requester_summary(*, pseudonym: str) -> dict[str, int]:
    """Counts of the requester's requests in the last 30 days: all, refused by the pre-check, blocked."""
    since = timezone.now() - REQUESTER_WINDOW
    return InferenceRequest.objects.filter(principal_pseudonym=pseudonym, created_at__gte=since).aggregate(
        requests=Count("id"),
        refusals=Count("id", filter=Q(status=RequestStatus.REFUSED)),
        blocks=Count("id", filter=Q(status=RequestStatus.BLOCKED)),
    )


def earlier_decisions_same_rule(*, escalation: Escalation, limit: int = 10) -> list[Escalation]:
    """Decided escalations that share a rule with this one, newest decision first."""
    rule_ids = sorted({hit["rule_id"] for hit in escalation.hits if hit.get("rule_id")})
    if not rule_ids:
        return []
    match = Q()
    for rule_id in rule_ids:
        if connection.vendor == "postgresql":
            match |= Q(hits__contains=[{"rule_id": rule_id}])
        else:
            match |= Q(hits__icontains=f'"rule_id": "{rule_id}"')
    return list(
        Escalation.objects.filter(match, decided_at__isnull=False)
        .exclude(status=EscalationStatus.PENDING)
        .exclude(pk=escalation.pk)
        .defer("hits")
        .order_by("-decided_at")[:limit]
    )


def escalation_history(*, escalation: Escalation, limit: int = 20) -> list[AuditEvent]:
    """The audit events about this escalation (claims, decisions), newest first."""
    return list(
        AuditEvent.objects.filter(subject_type="review.escalation", subject_id=str(escalation.pk)).order_by("-id")[
            :limit
        ]
    )


def reviewer_stats(*, days: int = STATS_DAYS) -> dict:
    """Decisions per reviewer per day, median time to decision, queue age by severity, overturned decisions.

    Overturned: an approved prompt escalation whose request's output was then escalated and blocked
    (docs/review.md explains the choice).
    """
    now = timezone.now()
    since = now - timedelta(days=days)
    decided = Escalation.objects.filter(decided_at__gte=since).exclude(status=EscalationStatus.PENDING)
    per_day = list(
        decided.annotate(day=TruncDate("decided_at"))
        .values("day", "decided_by_label")
        .annotate(approved=Count("id", filter=Q(status="approved")), blocked=Count("id", filter=Q(status="blocked")))
        .order_by("-day", "decided_by_label")
    )
    durations = [(d - c).total_seconds() for c, d in decided.values_list("created_at", "decided_at")[:50_000]]
    median_seconds = statistics.median(durations) if durations else None
    queue_age = []
    rows = (
        Escalation.objects.filter(status=EscalationStatus.PENDING)
        .values("severity")
        .annotate(n=Count("id"), oldest=Min("created_at"), overdue=Count("id", filter=Q(due_at__lte=now)))
        .order_by()
    )
    by_sev = {row["severity"]: row for row in rows}
    for sev in ("critical", "high", "medium", "low"):
        row = by_sev.get(sev)
        queue_age.append({"severity": sev, "pending": row["n"] if row else 0,
                          "oldest_age": (now - row["oldest"]) if row else None,
                          "overdue": row["overdue"] if row else 0})  # fmt: skip
    overturned = list(
        Escalation.objects.filter(direction="prompt", status=EscalationStatus.APPROVED, decided_at__gte=since)
        .filter(request__escalations__direction="output", request__escalations__status=EscalationStatus.BLOCKED)
        .annotate(blocked_at=Max("request__escalations__decided_at"))
        .defer("hits")
        .order_by("-decided_at")[:50]
    )
    return {"per_day": per_day, "median_seconds": median_seconds, "decided": len(durations),
            "queue_age": queue_age, "overturned": overturned, "days": days}  # fmt: skip
