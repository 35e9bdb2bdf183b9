"""Writes for escalations: create (gateway, worker), claim/release (console), decide (console, API),
and blocklist proposals made from a block."""

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from audits.services import audit_event_record
from review.models import (
    QUEUE_KEY_RANK_STEP,
    SEVERITY_ORDER,
    BlocklistProposal,
    Escalation,
    EscalationStatus,
    ProposalStatus,
    Severity,
    queue_key_for,
)
from safety_admin import metrics
from safety_admin.accounts.models import TIER_MAX_SEVERITY, Tier, tier_allows_severity
from safety_admin.db import Row, insert_together
from safety_admin.detectors import REASON_CODES
from safety_admin.inference.models import InferenceRequest, RequestStatus
from safety_admin.notifications.services import (
    notification_escalation_decided,
    notification_outbox_new,
    notification_outbox_written,
)

NOTE_REQUIRED = "A note is required to block, and to approve a high or critical escalation."
BAD_DECISION = "Decision must be approve or block."
SUSPEND_NOT_ALLOWED = "Only a privileged reviewer may suspend a requester, and only when blocking."
SUSPEND_REASON_REQUIRED = "A reason is required to suspend the requester."
PROPOSAL_NEEDS_BLOCK = "A blocklist entry can only be proposed from a block."
PROPOSAL_TEXT_REQUIRED = "Select the text to propose (1 to 500 characters)."
PROPOSAL_TEXT_NOT_FOUND = "The proposed text must appear in the prompt or the response."
PROPOSAL_BAD_REASON = "Unknown reason code."
PROPOSAL_BAD_SEVERITY = "Severity must be low, medium, high or critical."
PROPOSAL_BAD_STATUS = "A proposal can only be accepted or rejected."
PROPOSAL_ALREADY_DECIDED = "This proposal was already {status}."


class AlreadyDecided(Exception):
    """Someone decided first; ``who`` and ``decision`` say who and what."""

    def __init__(self, who: str, decision: str):
        super().__init__(f"already decided by {who}: {decision}")
        self.who = who
        self.decision = decision


class TierNotAllowed(Exception):
    """The reviewer's tier may not decide this severity."""


class ClaimedByOther(Exception):
    """Another reviewer holds an unexpired claim on the escalation."""

    def __init__(self, who: str):
        super().__init__(f"claimed by {who}")
        self.who = who


def _min_queue_key(tier: str) -> int:
    """Smallest queue_key a tier may see: its severities are a contiguous range of the key."""
    max_rank = TIER_MAX_SEVERITY.get(tier, -1)
    return (3 - max_rank) * QUEUE_KEY_RANK_STEP


def _actor_label(actor, actor_label: str = "") -> str:
    return actor_label or getattr(actor, "username", "") or "system"


@transaction.atomic(savepoint=False)  # callers run it inside their transaction: no SAVEPOINT round trips
def escalation_create(
    *, request: InferenceRequest, direction: str, severity: str, hits: list[dict], insert_request: bool = False
) -> Escalation:
    """Open an escalation for ``request``. Side effects: Escalation row, metric, notification (outbox).

    ``insert_request``: ``request`` is new and unsaved (the gateway's review path); it is inserted in the same
    statement as the escalation and its outbox rows.
    """
    reason_codes = []
    for hit in hits:
        if hit["reason_code"] not in reason_codes:
            reason_codes.append(hit["reason_code"])
    now = timezone.now()
    escalation = Escalation(
        request=request,
        direction=direction,
        severity=severity,
        severity_rank=SEVERITY_ORDER[severity],
        reason_codes=reason_codes,
        hits=hits,
        due_at=now + timedelta(minutes=settings.REVIEW_SLA_MINUTES[severity]),
        queue_key=queue_key_for(severity_rank=SEVERITY_ORDER[severity], created_at=now),
    )
    # ``request`` was saved (or is inserted below) in this transaction: no query to check that it exists.
    escalation.full_clean(exclude=["request"], validate_unique=False)
    first = [Row(request)] if insert_request else []
    outbox = notification_outbox_new(escalation=escalation, escalation_at=len(first))
    # The escalation and its outbox rows in one statement: notifications cost the request path no round trip.
    insert_together([*first, Row(escalation), *outbox])
    notification_outbox_written(outbox)
    metrics.ESCALATIONS.labels(severity=severity).inc()
    return escalation


def _claim_audit(escalation: Escalation, action: str, actor, until=None) -> None:
    audit_event_record(
        action=action,
        actor=actor,
        actor_label=_actor_label(actor),
        subject_type="review.escalation",
        subject_id=str(escalation.pk),
        subject_repr=f"escalation {escalation.pk} ({escalation.severity} {escalation.direction})",
        request_id=str(escalation.request_id),
        data={"claim_expires_at": until.isoformat() if until else None},
    )


def _holder_label(escalation: Escalation) -> str:
    holder = escalation.claimed_by
    return getattr(holder, "username", "") or "another reviewer"


@transaction.atomic
def escalation_claim(*, escalation_id: int, actor, tier: str) -> Escalation:
    """Claim one escalation for ``REVIEW_CLAIM_MINUTES`` (or extend one's own claim).

    The claim is a conditional UPDATE (unclaimed, expired or already ours), so two reviewers racing for
    the same row cannot both get it. Raises AlreadyDecided, ClaimedByOther, TierNotAllowed.
    Side effects: claimed_by/claim_expires_at, audit event ``review.escalation.claimed``.
    """
    escalation = Escalation.objects.select_related("claimed_by").get(pk=escalation_id)
    if not tier_allows_severity(tier, escalation.severity):
        raise TierNotAllowed(escalation.severity)
    now = timezone.now()
    until = now + timedelta(minutes=settings.REVIEW_CLAIM_MINUTES)
    changed = (
        Escalation.objects.filter(pk=escalation_id, status=EscalationStatus.PENDING)
        .filter(Q(claimed_by__isnull=True) | Q(claim_expires_at__lte=now) | Q(claimed_by=actor))
        .update(claimed_by=actor, claim_expires_at=until)
    )
    if not changed:
        escalation.refresh_from_db()
        if escalation.status != EscalationStatus.PENDING:
            raise AlreadyDecided(escalation.decided_by_label, escalation.status)
        raise ClaimedByOther(_holder_label(escalation))
    escalation.refresh_from_db()
    _claim_audit(escalation, "review.escalation.claimed", actor, until)
    return escalation


@transaction.atomic
def escalation_claim_next(*, actor, tier: str) -> Escalation | None:
    """Claim the top unclaimed escalation the tier may decide; a reviewer's own live claim comes first.

    ``SELECT … FOR UPDATE SKIP LOCKED`` lets concurrent reviewers each get a different row.
    Side effects: as ``escalation_claim``. Returns None when nothing is waiting.
    """
    now = timezone.now()
    mine = (
        Escalation.objects.filter(status=EscalationStatus.PENDING, claimed_by=actor, claim_expires_at__gt=now)
        .order_by("queue_key", "id")
        .first()
    )
    if mine is not None:
        return mine
    candidate = (
        Escalation.objects.select_for_update(skip_locked=True)
        .filter(status=EscalationStatus.PENDING, queue_key__gte=_min_queue_key(tier))
        .filter(Q(claimed_by__isnull=True) | Q(claim_expires_at__lte=now))
        .order_by("queue_key", "id")
        .first()
    )
    if candidate is None:
        return None
    until = now + timedelta(minutes=settings.REVIEW_CLAIM_MINUTES)
    candidate.claimed_by = actor
    candidate.claim_expires_at = until
    candidate.save(update_fields=["claimed_by", "claim_expires_at"])
    _claim_audit(candidate, "review.escalation.claimed", actor, until)
    return candidate


@transaction.atomic
def escalation_release(*, escalation_id: int, actor) -> Escalation:
    """Give back one's claim. Raises ClaimedByOther if someone else holds a live claim.

    Side effects: claim cleared, audit event ``review.escalation.released`` (nothing if there was no claim).
    """
    escalation = Escalation.objects.select_related("claimed_by").get(pk=escalation_id)
    now = timezone.now()
    if escalation.claimed_by_id is None:
        return escalation
    if escalation.claimed_by_id != actor.pk and escalation.claim_expires_at and escalation.claim_expires_at > now:
        raise ClaimedByOther(_holder_label(escalation))
    Escalation.objects.filter(pk=escalation_id, claimed_by_id=escalation.claimed_by_id).update(
        claimed_by=None, claim_expires_at=None
    )
    escalation.refresh_from_db()
    _claim_audit(escalation, "review.escalation.released", actor)
    return escalation


def _validate_proposal(*, text: str, reason_code: str, severity: str, request: InferenceRequest | None) -> str:
    text = (text or "").strip()
    if not text or len(text) > 500:
        raise ValidationError(PROPOSAL_TEXT_REQUIRED)
    if reason_code not in REASON_CODES:
        raise ValidationError(PROPOSAL_BAD_REASON)
    if severity not in Severity.values:
        raise ValidationError(PROPOSAL_BAD_SEVERITY)
    if request is not None and not any(text in field for field in (request.user_input, request.system_prompt,
                                                                   request.response)):  # fmt: skip
        raise ValidationError(PROPOSAL_TEXT_NOT_FOUND)
    return text


@transaction.atomic
def blocklist_proposal_create(
    *,
    text: str,
    reason_code: str,
    severity: str,
    reason: str = "",
    escalation: Escalation | None = None,
    actor=None,
    actor_label: str = "",
) -> BlocklistProposal:
    """Propose ``text`` as a blocklist entry for admins to accept.

    Side effects: BlocklistProposal row (pending), audit event ``review.blocklist_proposal.created``.
    """
    request = escalation.request if escalation is not None else None
    text = _validate_proposal(text=text, reason_code=reason_code, severity=severity, request=request)
    label = _actor_label(actor, actor_label)
    proposal = BlocklistProposal(
        text=text,
        reason_code=reason_code,
        severity=severity,
        reason=(reason or "").strip()[:500],
        escalation=escalation,
        proposed_by=actor if getattr(actor, "pk", None) else None,
        proposed_by_label=label,
    )
    proposal.full_clean()
    proposal.save()
    audit_event_record(
        action="review.blocklist_proposal.created",
        actor=actor,
        actor_label=label,
        subject_type="review.blocklist_proposal",
        subject_id=str(proposal.pk),
        subject_repr=str(proposal)[:300],
        request_id=str(request.pk) if request is not None else "",
        data={
            "text": text,
            "reason_code": reason_code,
            "severity": severity,
            "escalation_id": escalation.pk if escalation is not None else None,
        },
    )
    return proposal


@transaction.atomic
def blocklist_proposal_mark(*, proposal_id: int, status: str, actor, actor_label: str = "") -> BlocklistProposal:
    """Accept or reject a pending proposal, exactly once (conditional update).

    Creating the blocklist entry itself is the policies app's job. Side effects: status, decided_by/at,
    audit event ``review.blocklist_proposal.accepted`` or ``.rejected``.
    """
    if status not in {ProposalStatus.ACCEPTED, ProposalStatus.REJECTED}:
        raise ValidationError(PROPOSAL_BAD_STATUS)
    label = _actor_label(actor, actor_label)
    now = timezone.now()
    changed = BlocklistProposal.objects.filter(pk=proposal_id, status=ProposalStatus.PENDING).update(
        status=status, decided_by=actor if getattr(actor, "pk", None) else None, decided_by_label=label, decided_at=now
    )
    proposal = BlocklistProposal.objects.get(pk=proposal_id)
    if not changed:
        raise ValidationError(PROPOSAL_ALREADY_DECIDED.format(status=proposal.status))
    audit_event_record(
        action=f"review.blocklist_proposal.{status}",
        actor=actor,
        actor_label=label,
        subject_type="review.blocklist_proposal",
        subject_id=str(proposal.pk),
        subject_repr=str(proposal)[:300],
        data={"text": proposal.text, "reason_code": proposal.reason_code, "severity": proposal.severity},
    )
    return proposal


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
    suspend_for: timedelta | None = None,
    suspend_reason: str = "",
    propose_text: str = "",
    propose_reason_code: str = "",
    propose_severity: str = "",
) -> Escalation:
    """Approve or block one escalation, exactly once.

    The row is locked (SELECT … FOR UPDATE) so two reviewers can never both decide it; the loser
    gets AlreadyDecided. A console reviewer (``actor`` a user) may not decide an item someone else has a
    live claim on (ClaimedByOther); API callers have no claims and are not held back by them.
    Approve releases an output or sends a prompt on to the model; block withholds it for good, and may
    suspend the requester (privileged only) and propose a blocklist entry.
    Side effects: escalation and request status, audit event, notification, enqueue (on commit),
    optionally a Suspension and a BlocklistProposal (each with its own audit event).
    """
    from safety_admin.gateway.services import suspension_create
    from safety_admin.inference.services import inference_enqueue_quietly

    if decision not in {"approve", "block"}:
        raise ValidationError(BAD_DECISION)
    escalation = Escalation.objects.select_for_update().select_related("request").get(pk=escalation_id)
    if escalation.status != EscalationStatus.PENDING:
        raise AlreadyDecided(escalation.decided_by_label, escalation.status)
    if not tier_allows_severity(tier, escalation.severity):
        raise TierNotAllowed(escalation.severity)
    now = timezone.now()
    actor_pk = getattr(actor, "pk", None)
    if (
        actor_pk
        and escalation.claimed_by_id not in (None, actor_pk)
        and escalation.claim_expires_at
        and escalation.claim_expires_at > now
    ):
        holder = type(actor).objects.filter(pk=escalation.claimed_by_id).values_list("username", flat=True).first()
        raise ClaimedByOther(holder or "another reviewer")
    note = (note or "").strip()
    if not note and (decision == "block" or escalation.severity in {"high", "critical"}):
        raise ValidationError(NOTE_REQUIRED)
    if suspend_for is not None:
        if decision != "block" or tier != Tier.PRIVILEGED:
            raise ValidationError(SUSPEND_NOT_ALLOWED)
        if not (suspend_reason or "").strip():
            raise ValidationError(SUSPEND_REASON_REQUIRED)
    if propose_text and decision != "block":
        raise ValidationError(PROPOSAL_NEEDS_BLOCK)
    req = escalation.request
    escalation.status = EscalationStatus.APPROVED if decision == "approve" else EscalationStatus.BLOCKED
    escalation.decided_by = actor if actor_pk else None
    escalation.decided_by_label = actor_label
    escalation.reviewer_ref = reviewer_ref[:200]
    escalation.decided_at = now
    escalation.decision_note = note
    escalation.claimed_by = None
    escalation.claim_expires_at = None
    escalation.save(update_fields=["status", "decided_by", "decided_by_label", "reviewer_ref", "decided_at",
                                   "decision_note", "claimed_by", "claim_expires_at"])  # fmt: skip
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
    if suspend_for is not None:
        suspension_create(principal_id=req.principal_id, until=now + suspend_for, reason=suspend_reason,
                          actor=actor, actor_label=actor_label, request_id=str(req.pk))  # fmt: skip
    if propose_text:
        blocklist_proposal_create(text=propose_text, reason_code=propose_reason_code, severity=propose_severity,
                                  reason=note, escalation=escalation, actor=actor, actor_label=actor_label)  # fmt: skip
    metrics.REVIEW_DECISIONS.labels(decision=decision, severity=escalation.severity).inc()
    notification_escalation_decided(escalation=escalation)
    if new_status == RequestStatus.PENDING:
        inference_enqueue_quietly(req.pk, trace_id=req.trace_id)
    return escalation
