"""Notification outbox (the notifications issue builds delivery to Slack and PagerDuty on these hooks).

``review.services`` calls these inside the transaction that creates or decides an escalation.
"""


def notification_escalation_created(*, escalation) -> None:
    """Queue notifications about a new escalation (outbox row in the caller's transaction)."""


def notification_escalation_decided(*, escalation) -> None:
    """Queue updates for a decided escalation (Slack message update, PagerDuty resolve)."""


def notification_sweep() -> dict[str, int]:
    """Re-enqueue undelivered notifications; run periodically by the worker."""
    return {}
