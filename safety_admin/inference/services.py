"""Writes for inference requests: create at the gateway, finish in the worker, sweep what got stuck."""

import logging
from datetime import timedelta

import django_rq
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from redis.exceptions import RedisError
from rq import Retry
from rq.job import Job, JobStatus

from audits.models import AuditEvent
from audits.services import audit_event_prepare, audit_event_record
from safety_admin import metrics
from safety_admin.db import Row, insert_then
from safety_admin.detectors import Verdict
from safety_admin.inference.models import InferenceRequest, RequestStatus

log = logging.getLogger(__name__)

ACTOR_GATEWAY = "gateway"
ACTOR_WORKER = "worker"
JOB_PATH = "safety_admin.inference.jobs.inference_run"
MAX_ATTEMPTS_NOTE = "abandoned after {n} attempts (worker lost or job timed out)"


def hits_payload(verdict: Verdict, field: str = "user_input") -> list[dict]:
    return [{**hit.as_dict(), "field": field} for hit in verdict.hits]


def _audit_fields(req: InferenceRequest, action: str, actor_label: str, content: dict | None, data: dict) -> dict:
    """The request's audit event: the principal is kept pseudonymised and encrypted, content only as a hash."""
    return dict(
        principal_id=req.principal_id,
        content=content,
        action=action,
        actor_label=actor_label,
        subject_type="inference.request",
        subject_id=str(req.pk),
        subject_repr=f"request {req.pk} from {req.principal_pseudonym}",
        request_id=str(req.pk),
        trace_id=req.trace_id,
        data={"status": req.status, "principal": req.principal_pseudonym, **data},
    )


def _audit(req: InferenceRequest, action: str, actor_label: str, content: dict | None = None, **data) -> AuditEvent:
    return audit_event_record(**_audit_fields(req, action, actor_label, content, data))


def _prompt(req: InferenceRequest) -> dict[str, str]:
    return {"user_input": req.user_input, "system_prompt": req.system_prompt}


def inference_request_create(
    *,
    principal,
    user_input: str,
    system_prompt: str,
    model_name: str,
    metadata: dict,
    verdict: Verdict,
    hits: list[dict],
    trace_id: str,
) -> tuple[InferenceRequest, AuditEvent]:
    """Record a prompt that passed authentication and the pre-check, with its outcome.

    Side effects: an InferenceRequest (refused, in_review or pending); for review an Escalation and its
    notification; an audit event. The inference job is *not* enqueued here (see ``inference_enqueue``).
    A queued or refused request and its audit event are one SQL statement (atomic by itself, one round trip:
    this is most of what POST /safety/infer spends in the database); review writes more rows, in a transaction.
    """
    status = {
        "refuse": RequestStatus.REFUSED,
        "review": RequestStatus.IN_REVIEW,
    }.get(verdict.action, RequestStatus.PENDING)
    req = InferenceRequest(
        principal_id=principal.principal_id,
        principal_pseudonym=principal.pseudonym,
        principal_tier=principal.tier,
        profile=principal.profile,
        status=status,
        user_input=user_input,
        system_prompt=system_prompt,
        model_name=model_name,
        metadata=metadata,
        reason_codes=verdict.reason_codes,
        hits=hits,
        severity=verdict.severity if verdict.hits else "",
        policy_version=verdict.ruleset_version,
        trace_id=trace_id,
    )
    # No full_clean(): every field a client controls was validated by the gateway (schemas.parse_infer, the
    # token's claims in auth), the rest are ours; it cost a tenth of the request path's CPU.
    if status == RequestStatus.IN_REVIEW:
        return req, _create_in_review(req, verdict, hits)
    if status == RequestStatus.REFUSED:
        data = {"reason_code": verdict.primary_reason_code, "reason_codes": verdict.reason_codes, "hits": hits}
        fields = _audit_fields(req, "gateway.request.refused", ACTOR_GATEWAY, _prompt(req), data)
        metrics.REFUSALS.labels(reason_code=verdict.primary_reason_code or "UNCLASSIFIED_REVIEW").inc()
    else:
        fields = _audit_fields(req, "gateway.request.accepted", ACTOR_GATEWAY, _prompt(req),
                               {"reason_codes": verdict.reason_codes})  # fmt: skip
    prepared = audit_event_prepare(**fields)
    (event_id,) = insert_then([Row(req)], prepared.sql, prepared.params)
    return req, prepared.saved(event_id)


@transaction.atomic
def _create_in_review(req: InferenceRequest, verdict: Verdict, hits: list[dict]) -> AuditEvent:
    from review.services import escalation_create  # review depends on inference; import at call time

    # The request, its escalation and the outbox rows are one statement; the audit event (which names the
    # escalation's new id) a second, in the same transaction.
    escalation = escalation_create(
        request=req, direction="prompt", severity=verdict.severity, hits=hits, insert_request=True
    )
    return _audit(
        req,
        "gateway.request.escalated",
        ACTOR_GATEWAY,
        content=_prompt(req),
        escalation_id=escalation.pk,
        severity=escalation.severity,
        reason_codes=verdict.reason_codes,
    )


def inference_enqueue(request_id, *, trace_id: str = "", connection=None) -> None:
    """Put the inference job for ``request_id`` on the queue now. Call it after the row is committed.

    The job id is derived from the request id, so enqueueing twice replaces rather than duplicates.
    Redis errors propagate to the caller (the gateway answers 503); the sweep picks the request up later.
    """
    queue = django_rq.get_queue("inference", connection=connection, commit_mode="auto")
    queue.enqueue(
        JOB_PATH,
        str(request_id),
        trace_id,
        job_id=f"infer-{request_id}",
        job_timeout=settings.INFERENCE_JOB_TIMEOUT,
        retry=Retry(max=settings.INFERENCE_RETRIES, interval=settings.INFERENCE_RETRY_INTERVALS),
        result_ttl=600,
        failure_ttl=24 * 3600,
    )


def inference_enqueue_quietly(request_id, *, trace_id: str = "") -> None:
    """Enqueue from inside a transaction (a reviewer's approval); a Redis outage is left to the sweep."""

    def _send():
        try:
            inference_enqueue(request_id, trace_id=trace_id)
        except RedisError:
            log.warning("enqueue failed; the sweep will retry", extra={"event": "inference.enqueue_failed"})

    transaction.on_commit(_send)


def inference_mark_started(request_id) -> bool:
    """Count an attempt; False when the request is no longer pending (a duplicate job)."""
    return bool(
        InferenceRequest.objects.filter(pk=request_id, status=RequestStatus.PENDING).update(
            attempts=F("attempts") + 1, started_at=timezone.now(), updated_at=timezone.now()
        )
    )


@transaction.atomic
def inference_finish(*, request_id, text: str, truncated: bool, verdict: Verdict, model: str) -> str | None:
    """Store the model's answer and the post-check outcome; returns the new status, or None if already final.

    Side effects: conditional status update; an Escalation for review; an audit event.
    """
    from review.services import escalation_create

    status = {"refuse": RequestStatus.BLOCKED, "review": RequestStatus.IN_REVIEW}.get(
        verdict.action, RequestStatus.COMPLETED
    )
    hits = hits_payload(verdict, field="response")
    now = timezone.now()
    changed = InferenceRequest.objects.filter(pk=request_id, status=RequestStatus.PENDING).update(
        status=status,
        response=text,
        response_truncated=truncated,
        reason_codes=verdict.reason_codes or F("reason_codes"),
        severity=verdict.severity if verdict.hits else F("severity"),
        finished_at=now if status != RequestStatus.IN_REVIEW else None,
        updated_at=now,
    )
    if not changed:
        return None
    req = InferenceRequest.objects.get(pk=request_id)
    if status == RequestStatus.IN_REVIEW:
        req.hits = [*req.hits, *hits]
        req.save(update_fields=["hits"])
        escalation = escalation_create(request=req, direction="output", severity=verdict.severity, hits=hits)
        _audit(
            req,
            "inference.request.escalated",
            ACTOR_WORKER,
            content={"response": text},
            escalation_id=escalation.pk,
            severity=escalation.severity,
            reason_codes=verdict.reason_codes,
            model=model,
        )
    elif status == RequestStatus.BLOCKED:
        req.hits = [*req.hits, *hits]
        req.save(update_fields=["hits"])
        _audit(
            req,
            "inference.request.blocked",
            ACTOR_WORKER,
            content={"response": text},
            reason_codes=verdict.reason_codes,
            model=model,
        )
    else:
        _audit(
            req,
            "inference.request.completed",
            ACTOR_WORKER,
            content={"response": text},
            model=model,
            truncated=truncated,
        )
    metrics.INFERENCE_OUTCOMES.labels(status=status).inc()
    return status


@transaction.atomic
def inference_fail(*, request_id, reason: str) -> bool:
    """Mark a pending request failed with ``reason``. Side effects: conditional update, audit event."""
    changed = InferenceRequest.objects.filter(pk=request_id, status=RequestStatus.PENDING).update(
        status=RequestStatus.FAILED, failure_reason=reason[:300], finished_at=timezone.now(), updated_at=timezone.now()
    )
    if changed:
        req = InferenceRequest.objects.get(pk=request_id)
        _audit(req, "inference.request.failed", ACTOR_WORKER, reason=reason[:300])
        metrics.INFERENCE_OUTCOMES.labels(status=RequestStatus.FAILED).inc()
    return bool(changed)


def _job_alive(job_id: str, connection) -> bool:
    try:
        job = Job.fetch(job_id, connection=connection)
    except Exception:  # NoSuchJobError, or a job hash that no longer deserializes
        return False
    return job.get_status(refresh=False) in {
        JobStatus.QUEUED,
        JobStatus.STARTED,
        JobStatus.SCHEDULED,
        JobStatus.DEFERRED,
    }


def inference_sweep(*, now=None, connection=None) -> dict[str, int]:
    """Re-enqueue pending requests whose job vanished; fail those that keep dying.

    Safe to run from several workers at once: job ids are derived from request ids and every status
    change is conditional. Returns counts for logs and tests.
    """
    now = now or timezone.now()
    connection = connection or django_rq.get_connection("inference")
    quiet_since = now - timedelta(seconds=settings.INFERENCE_SWEEP_SECONDS)
    stale_started = now - timedelta(seconds=settings.INFERENCE_JOB_TIMEOUT + settings.INFERENCE_SWEEP_SECONDS)
    counts = {"requeued": 0, "failed": 0}
    max_attempts = settings.INFERENCE_RETRIES + 2
    pending = InferenceRequest.objects.filter(status=RequestStatus.PENDING, updated_at__lt=quiet_since)
    for req in pending.only("id", "attempts", "started_at", "trace_id").iterator(chunk_size=500):
        running_too_long = req.started_at is not None and req.started_at < stale_started
        if not running_too_long and _job_alive(req.job_id, connection):
            continue
        if req.attempts >= max_attempts:
            counts["failed"] += inference_fail(request_id=req.pk, reason=MAX_ATTEMPTS_NOTE.format(n=req.attempts))
            continue
        InferenceRequest.objects.filter(pk=req.pk, status=RequestStatus.PENDING).update(updated_at=now)
        # Drop any stale copy of the id from the queue list first, so the job is never listed twice.
        django_rq.get_queue("inference", connection=connection).remove(req.job_id)
        inference_enqueue(req.pk, trace_id=req.trace_id, connection=connection)
        counts["requeued"] += 1
    return counts
