"""Reads of the audit trail."""

from dataclasses import dataclass
from datetime import datetime

from audits.models import AuditCheckpoint, AuditEvent
from audits.services import ACTION_BROKEN, ACTION_VERIFIED


@dataclass(frozen=True)
class ChainStatus:
    """What the admin index shows: the head, the last checkpoint and the last verification outcome."""

    head_seq: int
    checkpoint_seq: int | None
    checkpoint_at: datetime | None
    verified: bool | None  # None: never verified
    verified_at: datetime | None
    verified_checkpoint_seq: int | None
    verified_events: int | None
    first_bad_seq: int | None
    problem: str


def audit_chain_status() -> ChainStatus:
    """Three indexed queries, whatever the size of the trail."""
    head = AuditEvent.objects.filter(seq__isnull=False).order_by("-seq").values_list("seq", flat=True).first() or 0
    checkpoint = AuditCheckpoint.objects.order_by("-seq").only("seq", "created_at").first()
    last = (
        AuditEvent.objects.filter(action__in=(ACTION_VERIFIED, ACTION_BROKEN))
        .order_by("-id")
        .only("created_at", "action", "data")
        .first()
    )
    data = last.data if last else {}
    return ChainStatus(
        head_seq=head,
        checkpoint_seq=checkpoint.seq if checkpoint else None,
        checkpoint_at=checkpoint.created_at if checkpoint else None,
        verified=None if last is None else last.action == ACTION_VERIFIED,
        verified_at=last.created_at if last else None,
        verified_checkpoint_seq=data.get("last_checkpoint_seq"),
        verified_events=data.get("events"),
        first_bad_seq=data.get("first_bad_seq"),
        problem=data.get("problem", ""),
    )
