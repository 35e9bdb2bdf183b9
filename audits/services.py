"""The single writer of the audit trail."""

import secrets
from typing import Any

from django.db import transaction
from django.utils import timezone

from audits.models import AuditEvent
from safety_admin import context


def _new_ticket_id() -> str:
    return f"audit-{secrets.token_hex(10)}"


@transaction.atomic
def audit_event_record(
    *,
    action: str,
    actor=None,
    actor_label: str = "",
    subject_type: str = "",
    subject_id: str = "",
    subject_repr: str = "",
    request_id: str = "",
    trace_id: str = "",
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event. Call it inside the transaction of the change it records.

    Side effects: one AuditEvent row.
    """
    ctx = context.current()
    label = actor_label or (getattr(actor, "username", "") if actor is not None else "") or "system"
    event = AuditEvent(
        ticket_id=_new_ticket_id(),
        created_at=timezone.now(),
        actor=actor if getattr(actor, "pk", None) else None,
        actor_label=label[:200],
        action=action,
        subject_type=subject_type,
        subject_id=str(subject_id),
        subject_repr=subject_repr[:300],
        request_id=request_id or ctx.request_id,
        trace_id=trace_id or ctx.trace_id,
        data=data or {},
    )
    event.save()
    return event
