"""Reads for escalations."""

from review.models import Escalation


def escalation_for_request(*, request_id) -> Escalation | None:
    """The open escalation of a request, else its latest one."""
    qs = Escalation.objects.filter(request_id=request_id).order_by("-created_at")
    return qs.filter(status="pending").first() or qs.first()
