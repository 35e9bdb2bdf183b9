"""Reads for the gateway."""

from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone

from safety_admin.gateway.models import Suspension
from safety_admin.inference.models import InferenceRequest, RequestStatus
from safety_admin.ttl_cache import TtlCache

_suspension_cache: TtlCache[str, Suspension | None] = TtlCache()


def suspension_active(*, principal_id: str) -> Suspension | None:
    """The suspension in force for ``principal_id`` with the latest end, if any.

    Cached per process for SAFETY_AUTH_CACHE_SECONDS, so a new suspension applies everywhere within that time.
    """

    def load() -> Suspension | None:
        return (
            Suspension.objects.filter(principal_id=principal_id, lifted_at__isnull=True, until__gt=timezone.now())
            .order_by("-until")
            .first()
        )

    found = _suspension_cache.get(principal_id, load, settings.SAFETY_AUTH_CACHE_SECONDS)
    return found if found is None or found.until > timezone.now() else None


def forget_cached_suspension(principal_id: str) -> None:
    _suspension_cache.forget(principal_id)


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
