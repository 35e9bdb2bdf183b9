"""Writes for escalations: create (gateway, worker) and decide (console, API)."""

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from audits.services import audit_event_record
from review.models import SEVERITY_ORDER, Escalation, EscalationStatus
from safety_admin import metrics
from safety_admin.accounts.models import tier_allows_severity
from safety_admin.inference.models import InferenceRequest, RequestStatus
from safety_admin.notifications.services import notification_escalation_created, notification_escalation_decided

NOTE_REQUIRED = "A note is required to block, and to approve a high or critical escalation."
BAD_DECISION = "Decision must be approve or block."


class AlreadyDecided(Exception):
    """Someone decided first; ``who`` and ``decision`` say who and what."""

    def __init__(self, who: str, decision: str):
        super().__init__(f"already decided by {who}: {decision}")
        self.who = who
        self.decision = decision


class TierNotAllowed(Exception):
    """The reviewer's tier may not decide this severity."""


@transaction.atomic
def escalation_create(*, request: InferenceRequest, direction: str, severity: str, hits: list[dict]) -> Escalation:
    """Open an escalation for ``request``. Side effects: Escalation row, metric, notification (outbox)."""
    reason_codes = []
    for hit in hits:
        if hit["reason_code"] not in reason_codes:
            reason_codes.append(hit["reason_code"])
    escalation = Escalation(
        request=request,
        direction=direction,
        severity=severity,
        severity_rank=SEVERITY_ORDER[severity],
        reason_codes=reason_codes,
        hits=hits,
        due_at=timezone.now() + timedelta(minutes=settings.REVIEW_SLA_MINUTES[severity]),
    )
    escalation.full_clean()
    escalation.save()
    metrics.ESCALATIONS.labels(severity=severity).inc()
    notification_escalation_created(escalation=escalation)
    return escalation


@transaction.atomic
def escalation_decide(
    *,
    escalation_id: int,
    decision: str,
    tier: str,
    actor=None,
    actor_label: str,
    note: str = "",
    reviewer_ref: str = "",
) -> Escalation:
    """Approve or block one escalation, exactly once.

    The row is locked (SELECT … FOR UPDATE) so two reviewers can never both decide it; the loser
    gets AlreadyDecided. Approve releases an output or sends a prompt on to the model; block withholds
    it for good. Side effects: escalation and request status, audit event, enqueue (on commit).
    """
    from safety_admin.inference.services import inference_enqueue_quietly

    if decision not in {"approve", "block"}:
        raise ValidationError(BAD_DECISION)
    escalation = Escalation.objects.select_for_update().select_related("request").get(pk=escalation_id)
    if escalation.status != EscalationStatus.PENDING:
        raise AlreadyDecided(escalation.decided_by_label, escalation.status)
    if not tier_allows_severity(tier, escalation.severity):
        raise TierNotAllowed(escalation.severity)
    note = (note or "").strip()
    if not note and (decision == "block" or escalation.severity in {"high", "critical"}):
        raise ValidationError(NOTE_REQUIRED)
    now = timezone.now()
    escalation.status = EscalationStatus.APPROVED if decision == "approve" else EscalationStatus.BLOCKED
    escalation.decided_by = actor if getattr(actor, "pk", None) else None
    escalation.decided_by_label = actor_label
    escalation.reviewer_ref = reviewer_ref[:200]
    escalation.decided_at = now
    escalation.decision_note = note
    escalation.claimed_by = None
    escalation.claim_expires_at = None
    escalation.save(update_fields=["status", "decided_by", "decided_by_label", "reviewer_ref", "decided_at",
                                   "decision_note", "claimed_by", "claim_expires_at"])  # fmt: skip
    req = escalation.request
    if decision == "block":
        new_status = RequestStatus.BLOCKED
    elif escalation.direction == "output":
        new_status = RequestStatus.COMPLETED
    else:
        new_status = RequestStatus.PENDING
    InferenceRequest.objects.filter(pk=req.pk, status=RequestStatus.IN_REVIEW).update(
        status=new_status, updated_at=now, finished_at=None if new_status == RequestStatus.PENDING else now
    )
    audit_event_record(
        action=f"review.escalation.{escalation.status}",
        actor=actor,
        actor_label=actor_label,
        subject_type="review.escalation",
        subject_id=str(escalation.pk),
        subject_repr=f"escalation {escalation.pk} ({escalation.severity} {escalation.direction})",
        request_id=str(req.pk),
        trace_id=req.trace_id,
        data={
            "decision": decision,
            "note": note,
            "severity": escalation.severity,
            "direction": escalation.direction,
            "reason_codes": escalation.reason_codes,
            "reviewer_ref": reviewer_ref[:200],
            "request_status": new_status,
        },
    )
    metrics.REVIEW_DECISIONS.labels(decision=decision, severity=escalation.severity).inc()
    notification_escalation_decided(escalation=escalation)
    if new_status == RequestStatus.PENDING:
        inference_enqueue_quietly(req.pk, trace_id=req.trace_id)
    return escalation
