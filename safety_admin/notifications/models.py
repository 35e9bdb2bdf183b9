"""The notification outbox: one row per (escalation, channel, event), and a log of delivery attempts."""

from django.db import models
from django.db.models import Q


class Channel(models.TextChoices):
    SLACK = "slack", "Slack"
    PAGERDUTY = "pagerduty", "PagerDuty"


class Kind(models.TextChoices):
    CREATED = "created", "Escalation created"
    DECIDED = "decided", "Escalation decided"


class NotificationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"


class Notification(models.Model):
    """One message to send to one channel, written in the transaction that created or decided the escalation.

    The row is the source of truth; RQ jobs carry only its id. A worker claims an attempt by a conditional
    update that sets ``lease_expires_at``, so a job that runs twice (or a sweep that re-enqueues a live row)
    sends nothing extra. A "decided" row waits for its ``depends_on`` "created" row, so a resolve never
    overtakes its trigger and a Slack update always knows the ``ts`` of the message it edits.
    """

    # No index of its own: notification_once_per_event starts with escalation_id (one index less per insert).
    escalation = models.ForeignKey(
        "review.Escalation", on_delete=models.CASCADE, related_name="notifications", db_index=False
    )
    channel = models.CharField(max_length=16, choices=Channel.choices)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=NotificationStatus.choices, default=NotificationStatus.PENDING)
    # Indexed only where set (see Meta): most rows have no predecessor.
    depends_on = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="dependents", db_index=False
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True, default="")
    external_channel = models.CharField(max_length=100, blank=True, default="", help_text="Slack channel id")
    external_ref = models.CharField(max_length=100, blank=True, default="", help_text="Slack ts or PagerDuty key")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["escalation", "channel", "kind"], name="notification_once_per_event"),
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="notification_due"),
            models.Index(fields=["depends_on"], name="notification_dependents", condition=Q(depends_on__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"{self.get_channel_display()} {self.kind} #{self.escalation_id} ({self.status})"

    @property
    def next_job_id(self) -> str:
        """RQ job id of the next attempt: derived from the row id, so enqueueing it twice replaces, not doubles."""
        return f"notify-{self.pk}-{self.attempts + 1}"


class AttemptOutcome(models.TextChoices):
    SENDING = "sending", "Sending"
    DELIVERED = "delivered", "Delivered"
    RETRY = "retry", "Will retry"
    FAILED = "failed", "Failed"
    ABANDONED = "abandoned", "Abandoned (worker lost mid-send)"


class DeliveryAttempt(models.Model):
    """One try at sending a notification: what the receiver answered and what happens next (the delivery log)."""

    notification = models.ForeignKey(Notification, on_delete=models.CASCADE, related_name="delivery_log")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=AttemptOutcome.choices, default=AttemptOutcome.SENDING)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    detail = models.CharField(max_length=500, blank=True, default="")
    retry_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["notification", "number"]

    def __str__(self) -> str:
        return f"attempt {self.number} of notification {self.notification_id}: {self.outcome}"
