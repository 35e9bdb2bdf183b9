"""RQ jobs of the "notifications" queue. They take ids and call services."""

import logging

from safety_admin.notifications import services

log = logging.getLogger(__name__)


def notification_deliver(notification_id: int) -> str:
    """One delivery attempt for one outbox row (a no-op if it is delivered, not due, or held by another worker)."""
    outcome = services.notification_deliver(notification_id=int(notification_id))
    log.info("notification attempt", extra={"event": "notification.attempt", "outcome": str(outcome)})
    return str(outcome)


def notification_sweep_job() -> dict[str, int]:
    """Periodic sweep, also callable as a job."""
    return services.notification_sweep()
