"""Notification outbox: rows written with the escalation, delivered by RQ jobs, swept when jobs vanish.

``review.services`` calls the two hooks inside the transaction that creates or decides an escalation;
the worker runs ``notification_sweep`` every INFERENCE_SWEEP_SECONDS. Retries are the outbox's own
(exponential backoff with jitter, Retry-After honoured), not slack-sdk's or RQ's, so every try lands in
the delivery log. See docs/notifications.md for the decisions.
"""

import logging
import random
from datetime import timedelta

import django_rq
import redis
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from redis.exceptions import RedisError
from rq import Queue
from rq.job import Job, JobStatus

from audits.services import audit_event_record
from review.models import SEVERITY_ORDER, Escalation
from safety_admin.db import Row, insert_together
from safety_admin.notifications import dispatch, listener, messages, pagerduty, slack
from safety_admin.notifications.errors import DeliveryError
from safety_admin.notifications.models import (
    AttemptOutcome,
    Channel,
    DeliveryAttempt,
    Kind,
    Notification,
    NotificationStatus,
)

log = logging.getLogger(__name__)

JOB_PATH = "safety_admin.notifications.jobs.notification_deliver"
ACTOR = "notifications"
PD_NOT_CONFIGURED = "PagerDuty is not configured (set PAGERDUTY_ROUTING_KEY)"
ABANDONED_NOTE = "worker lost before the outcome was recorded"
RETRY_AFTER_CAP_SECONDS = 3600.0
SWEEP_GRACE_SECONDS = 2
# A job may start a little before the row is due by this host's clock (another host wrote next_attempt_at).
CLOCK_SKEW_SECONDS = 1

_connections: dict[str, redis.Redis] = {}


# --- enqueueing ----------------------------------------------------------------------------------


def _redis() -> redis.Redis:
    """The notifications queue's Redis, with short timeouts: an outage must not stall the request path."""
    url = settings.RQ_QUEUES["notifications"]["URL"]
    client = _connections.get(url)
    if client is None:
        client = redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=2.0)
        _connections[url] = client
    return client


def notification_enqueue(rows: list[tuple[int, int]], *, delay: float = 0.0, connection=None) -> None:
    """Queue delivery jobs for ``(notification id, attempt number)`` pairs, in one round trip when not delayed.

    The job id is ``notify-<id>-<attempt>``: enqueueing the same attempt twice replaces the job instead of
    adding one, and a duplicate run would find the row already claimed. Raises RedisError when Redis is down.
    """
    if not rows:
        return
    queue = django_rq.get_queue("notifications", connection=connection or _redis())
    options = {"result_ttl": 600, "failure_ttl": 24 * 3600}
    timeout = settings.NOTIFICATION_LEASE_SECONDS
    if delay > 0:
        for notification_id, attempt in rows:
            queue.enqueue_in(timedelta(seconds=delay), JOB_PATH, notification_id,
                             job_id=f"notify-{notification_id}-{attempt}", job_timeout=timeout, **options)  # fmt: skip
        return
    queue.enqueue_many([
        Queue.prepare_data(JOB_PATH, (notification_id,), job_id=f"notify-{notification_id}-{attempt}",
                           timeout=timeout, **options)
        for notification_id, attempt in rows
    ])  # fmt: skip


def _dispatch_on_commit(rows: list[tuple[int, int]]) -> None:
    """After commit, get the new rows' first jobs queued without the request path waiting on Redis.

    PostgreSQL: nothing to do here. The outbox trigger's NOTIFY reaches a worker's OutboxListener at commit
    (``Row.announce``, ``listener.py``). SQLite (``make run``): hand them to this process's dispatcher thread.
    """
    if rows and transaction.get_connection().vendor != "postgresql":
        transaction.on_commit(lambda: dispatch.submit(rows), robust=True)


def _enqueue_on_commit(rows: list[tuple[int, int]], *, delay: float = 0.0) -> None:
    """After commit, queue the jobs; a Redis outage is logged and left to the sweep (never the caller's error)."""
    if not rows:
        return

    def _send():
        try:
            notification_enqueue(rows, delay=delay)
        except RedisError:
            log.warning("notification enqueue failed; the sweep will retry",
                        extra={"event": "notification.enqueue_failed", "count": len(rows)})  # fmt: skip

    transaction.on_commit(_send, robust=True)


# --- hooks called by review.services -------------------------------------------------------------


def _wanted_channels(severity: str) -> list[str]:
    rank = SEVERITY_ORDER[severity]
    channels = []
    if slack.slack_mode() and rank >= SEVERITY_ORDER.get(settings.SLACK_MIN_SEVERITY, 99):
        channels.append(Channel.SLACK)
    if settings.PAGERDUTY_ROUTING_KEY and rank >= SEVERITY_ORDER.get(settings.PAGERDUTY_MIN_SEVERITY, 99):
        channels.append(Channel.PAGERDUTY)
    return channels


def _outbox(rows: list[Notification], refs: dict[str, int] | None = None) -> list[Row]:
    """Outbox rows for ``insert_together``, announced to the workers' OutboxListener when the statement commits."""
    return [Row(row, refs=dict(refs or {}), announce=listener.OUTBOX_CHANNEL) for row in rows]


def notification_outbox_new(*, escalation, escalation_at: int) -> list[Row]:
    """The outbox rows a new escalation needs (one per configured channel whose minimum severity is met).

    Unsaved, for the caller's ``insert_together`` batch, where the escalation is row ``escalation_at``; the
    caller then calls ``notification_outbox_written``. One statement for both keeps notifications off the
    request path's clock (issue 8: creation with them on at most 1.1 times off).
    """
    channels = _wanted_channels(escalation.severity)
    now = timezone.now()
    # Built from the Channel and Kind constants and a timestamp: nothing here for full_clean to find.
    rows = [Notification(escalation=escalation, channel=c, kind=Kind.CREATED, next_attempt_at=now) for c in channels]
    return _outbox(rows, {"escalation": escalation_at})


def notification_outbox_written(rows: list[Row]) -> None:
    """Hand the new rows' delivery jobs to the dispatcher once the transaction commits."""
    _dispatch_on_commit([(row.instance.pk, 1) for row in rows])


@transaction.atomic(savepoint=False)
def notification_escalation_decided(*, escalation) -> None:
    """Queue updates for a decided escalation (Slack message update or follow-up, PagerDuty resolve).

    Side effects: one "decided" outbox row per channel that was notified of the creation, each depending on
    that row; jobs enqueued on commit. A job whose predecessor is still pending returns at once and is
    enqueued again when the predecessor finishes; enqueueing it anyway closes the race where the
    predecessor finishes while this transaction is still open (and so cannot see the new row).
    """
    created = list(Notification.objects.filter(escalation_id=escalation.pk, kind=Kind.CREATED).only("id", "channel"))
    if not created:
        return
    now = timezone.now()
    rows = [Notification(escalation=escalation, channel=first.channel, kind=Kind.DECIDED, depends_on=first,
                         next_attempt_at=now) for first in created]  # fmt: skip
    for row in rows:
        row.full_clean(exclude=["escalation", "depends_on"], validate_unique=False, validate_constraints=False)
    outbox = _outbox(rows)
    insert_together(outbox)
    notification_outbox_written(outbox)


# --- delivery ------------------------------------------------------------------------------------


def retry_delay(attempt: int, retry_after: float | None = None) -> float:
    """Seconds before attempt ``attempt + 1``: exponential backoff with "equal jitter", at least Retry-After."""
    ceiling = min(settings.NOTIFICATION_RETRY_MAX_SECONDS,
                  settings.NOTIFICATION_RETRY_BASE_SECONDS * 2 ** max(0, attempt - 1))  # fmt: skip
    delay = ceiling / 2 + random.uniform(0, ceiling / 2)
    if retry_after is not None:
        delay = max(delay, min(retry_after, RETRY_AFTER_CAP_SECONDS))
    return delay


def _claim(notification_id: int, now) -> tuple[Notification, DeliveryAttempt, bool] | None:
    """Take the next attempt by a conditional update (a lease), or None if it is not ours to send."""
    lease_until = now + timedelta(seconds=settings.NOTIFICATION_LEASE_SECONDS)
    with transaction.atomic():
        claimed = (
            Notification.objects.filter(
                pk=notification_id,
                status=NotificationStatus.PENDING,
                next_attempt_at__lte=now + timedelta(seconds=CLOCK_SKEW_SECONDS),
            )
            .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lte=now))
            .update(attempts=F("attempts") + 1, lease_expires_at=lease_until, updated_at=now)
        )
        if not claimed:
            return None
        row = Notification.objects.select_related("depends_on", "escalation__request").get(pk=notification_id)
        # A "sending" attempt left behind means a worker died mid-send: the receiver may have the message.
        lost = row.attempts > 1 and DeliveryAttempt.objects.filter(
            notification=row, outcome=AttemptOutcome.SENDING
        ).update(outcome=AttemptOutcome.ABANDONED, finished_at=now, detail=ABANDONED_NOTE)
        attempt = DeliveryAttempt.objects.create(notification=row, number=row.attempts, started_at=now)
    return row, attempt, bool(lost)


def _send(row: Notification, escalation: Escalation, uncertain: bool) -> tuple[str, str, str]:
    """Call the boundary for ``row``; returns (external channel, external ref, detail). Raises DeliveryError."""
    if row.channel == Channel.PAGERDUTY:
        if not settings.PAGERDUTY_ROUTING_KEY:
            raise DeliveryError(PD_NOT_CONFIGURED, transient=False)
        action = "trigger" if row.kind == Kind.CREATED else "resolve"
        answer = pagerduty.pagerduty_send(messages.pagerduty_event(escalation, action=action))
        return "", str(answer.get("dedup_key") or messages.pagerduty_dedup_key(escalation.pk)), f"{action} accepted"
    key = f"notification-{row.pk}"
    first = row.depends_on
    if row.kind == Kind.DECIDED and slack.slack_mode() == "webhook":
        text, blocks = messages.slack_decision_followup(escalation)
        result = slack.slack_send(text=text, blocks=blocks, key=key)
    elif row.kind == Kind.DECIDED and first is not None and first.external_ref:
        text, blocks = messages.slack_message(escalation)
        result = slack.slack_send(text=text, blocks=blocks, key=key, update_ts=first.external_ref,
                                  update_channel=first.external_channel)  # fmt: skip
    else:
        text, blocks = messages.slack_message(escalation)
        result = slack.slack_send(text=text, blocks=blocks, key=key, check_existing=uncertain)
    verb = "updated" if row.kind == Kind.DECIDED and first is not None and first.external_ref else "posted"
    return result.channel, result.ts, f"slack {result.mode} {verb}"


def _audit(row: Notification, escalation: Escalation, action: str, **data) -> None:
    audit_event_record(
        action=action,
        actor_label=ACTOR,
        subject_type="notifications.notification",
        subject_id=str(row.pk),
        subject_repr=f"{row.channel} {row.kind} notification for escalation {row.escalation_id}",
        request_id=str(escalation.request_id),
        trace_id=escalation.request.trace_id,
        data={"channel": row.channel, "kind": row.kind, "escalation_id": row.escalation_id,
              "attempts": row.attempts, **data},
    )  # fmt: skip


def _kick_dependents(row: Notification) -> None:
    if row.kind != Kind.CREATED:  # only "created" rows have rows waiting on them
        return
    waiting = Notification.objects.filter(depends_on=row, status=NotificationStatus.PENDING).only("id", "attempts")
    _enqueue_on_commit([(dep.pk, dep.attempts + 1) for dep in waiting])


@transaction.atomic
def _record_delivered(row, attempt, escalation, *, channel: str, ref: str, detail: str) -> str:
    now = timezone.now()
    updated = Notification.objects.filter(pk=row.pk, status=NotificationStatus.PENDING, attempts=row.attempts).update(
        status=NotificationStatus.DELIVERED, delivered_at=now, lease_expires_at=None, last_error="",
        external_channel=channel[:100], external_ref=ref[:100], updated_at=now,
    )  # fmt: skip
    DeliveryAttempt.objects.filter(pk=attempt.pk).update(outcome=AttemptOutcome.DELIVERED, finished_at=now,
                                                         detail=detail[:500])  # fmt: skip
    if updated:
        _audit(row, escalation, "notifications.notification.delivered", external_ref=ref[:100])
        _kick_dependents(row)
    return NotificationStatus.DELIVERED


@transaction.atomic
def _record_error(row, attempt, escalation, exc: DeliveryError) -> str:
    now = timezone.now()
    too_old = (now - row.created_at).total_seconds() >= settings.NOTIFICATION_GIVE_UP_SECONDS
    pending = Notification.objects.filter(pk=row.pk, status=NotificationStatus.PENDING, attempts=row.attempts)
    if exc.transient and row.attempts < settings.NOTIFICATION_MAX_ATTEMPTS and not too_old:
        delay = retry_delay(row.attempts, exc.retry_after)
        retry_at = now + timedelta(seconds=delay)
        pending.update(next_attempt_at=retry_at, lease_expires_at=None, last_error=exc.reason, updated_at=now)
        DeliveryAttempt.objects.filter(pk=attempt.pk).update(outcome=AttemptOutcome.RETRY, finished_at=now,
                                                             http_status=exc.status, detail=exc.reason,
                                                             retry_at=retry_at)  # fmt: skip
        _enqueue_on_commit([(row.pk, row.attempts + 1)], delay=delay)
        return AttemptOutcome.RETRY
    reason = exc.reason if not exc.transient else f"gave up after {row.attempts} attempts: {exc.reason}"[:500]
    updated = pending.update(status=NotificationStatus.FAILED, lease_expires_at=None, last_error=reason, updated_at=now)
    DeliveryAttempt.objects.filter(pk=attempt.pk).update(outcome=AttemptOutcome.FAILED, finished_at=now,
                                                         http_status=exc.status, detail=reason)  # fmt: skip
    if updated:
        _audit(row, escalation, "notifications.notification.failed", reason=reason, http_status=exc.status)
        _kick_dependents(row)
    return NotificationStatus.FAILED


def notification_deliver(*, notification_id: int) -> str:
    """Make one delivery attempt for a notification, if it is due and nobody else holds it.

    Side effects: attempt counter and lease (claim); a DeliveryAttempt row; the HTTP call outside any
    transaction; then in one transaction the outcome, its audit event (delivered or failed) and the next
    job (a retry, or the notifications that waited for this one). Returns what happened.
    """
    now = timezone.now()
    row = Notification.objects.select_related("depends_on").filter(pk=notification_id).first()
    if row is None:
        return "gone"
    if row.status != NotificationStatus.PENDING:
        return row.status
    if row.depends_on is not None and row.depends_on.status == NotificationStatus.PENDING:
        return "waiting"
    claim = _claim(notification_id, now)
    if claim is None:
        return "busy"
    row, attempt, uncertain = claim
    escalation = row.escalation
    try:
        channel, ref, detail = _send(row, escalation, uncertain)
    except DeliveryError as exc:
        log.warning("notification not delivered", extra={"event": "notification.error", "channel": row.channel,
                                                         "transient": exc.transient, "reason": exc.reason})  # fmt: skip
        return _record_error(row, attempt, escalation, exc)
    return _record_delivered(row, attempt, escalation, channel=channel, ref=ref, detail=detail)


@transaction.atomic
def notification_retry_now(*, notification_ids: list[int], actor=None, actor_label: str) -> int:
    """Make failed or waiting notifications due now (the admin's "retry now"); returns how many.

    Delivered rows are left alone (a second Slack post would be a duplicate), as are rows a worker is
    sending right now. Side effects: status/next attempt reset, an audit event each, jobs on commit.
    """
    now = timezone.now()
    rows = Notification.objects.select_for_update().select_related("escalation__request").filter(
        pk__in=notification_ids
    ).exclude(status=NotificationStatus.DELIVERED)  # fmt: skip
    queued = []
    for row in rows:
        if row.lease_expires_at is not None and row.lease_expires_at > now:
            continue
        previous = row.status
        row.status = NotificationStatus.PENDING
        row.next_attempt_at = now
        row.lease_expires_at = None
        row.save(update_fields=["status", "next_attempt_at", "lease_expires_at", "updated_at"])
        audit_event_record(
            action="notifications.notification.retry_requested",
            actor=actor,
            actor_label=actor_label,
            subject_type="notifications.notification",
            subject_id=str(row.pk),
            subject_repr=f"{row.channel} {row.kind} notification for escalation {row.escalation_id}",
            request_id=str(row.escalation.request_id),
            trace_id=row.escalation.request.trace_id,
            data={"channel": row.channel, "kind": row.kind, "previous_status": previous, "attempts": row.attempts},
        )
        queued.append((row.pk, row.attempts + 1))
    _enqueue_on_commit(queued)
    return len(queued)


# --- sweep ---------------------------------------------------------------------------------------


def _job_alive(job_id: str, connection, *, overdue: bool) -> bool:
    try:
        job = Job.fetch(job_id, connection=connection)
    except Exception:  # NoSuchJobError, or a job hash that no longer deserializes
        return False
    status = job.get_status(refresh=False)
    if status in {JobStatus.QUEUED, JobStatus.STARTED}:
        return True
    # A scheduled retry long past its time means no scheduler is running: enqueue it directly.
    return status == JobStatus.SCHEDULED and not overdue


def notification_sweep(*, now=None, connection=None) -> dict[str, int]:
    """Re-enqueue due, unclaimed notifications whose job is gone (Redis restarted, enqueue failed, worker died).

    Safe in every worker at once: job ids are derived from row ids and attempts, and sending needs a claim.
    Returns counts for logs and tests.
    """
    now = now or timezone.now()
    connection = connection or _redis()
    overdue_before = now - timedelta(seconds=settings.INFERENCE_SWEEP_SECONDS)
    due = (
        Notification.objects.filter(status=NotificationStatus.PENDING,
                                    next_attempt_at__lte=now - timedelta(seconds=SWEEP_GRACE_SECONDS))
        .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lte=now))
        .exclude(depends_on__status=NotificationStatus.PENDING)
        .only("id", "attempts", "next_attempt_at")
    )  # fmt: skip
    batch = []
    for row in due.iterator(chunk_size=500):
        if not _job_alive(row.next_job_id, connection, overdue=row.next_attempt_at < overdue_before):
            batch.append((row.pk, row.attempts + 1))
    for start in range(0, len(batch), 500):
        notification_enqueue(batch[start : start + 500], connection=connection)
    return {"requeued": len(batch)}
