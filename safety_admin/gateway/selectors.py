"""Reads for the gateway."""

from django.db.models import Count, Q
from django.utils import timezone

from safety_admin.gateway.models import Suspension
from safety_admin.inference.models import InferenceRequest, RequestStatus


def suspension_active(*, principal_id: str) -> Suspension | None:
    """The suspension in force for ``principal_id`` with the latest end, if any."""
    return (
        Suspension.objects.filter(principal_id=principal_id, lifted_at__isnull=True, until__gt=timezone.now())
        .order_by("-until")
        .first()
    )


def request_for_principal(*, request_id, principal) -> InferenceRequest | None:
    """A request the principal may read: its own, or any for the privileged tier."""
    qs = InferenceRequest.objects.filter(pk=request_id)
    if principal.tier != "privileged":
        qs = qs.filter(principal_id=principal.principal_id)
    return qs.first()


def queue_depth_review() -> dict[str, int]:
    """Pending escalations per severity."""
    from review.models import Escalation

    counts = Escalation.objects.filter(status="pending").aggregate(
        **{sev: Count("id", filter=Q(severity=sev)) for sev in ("low", "medium", "high", "critical")}
    )
    return {sev: counts[sev] or 0 for sev in ("low", "medium", "high", "critical")}


def requests_pending_count() -> int:
    return InferenceRequest.objects.filter(status=RequestStatus.PENDING).count()
