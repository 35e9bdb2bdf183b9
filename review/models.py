"""Escalations: requests or answers that a person must approve or block."""

from django.conf import settings
from django.db import models


class Severity(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"


SEVERITY_ORDER = {"low": 0, "medium": 1, "high": 2, "critical": 3}


class Direction(models.TextChoices):
    PROMPT = "prompt", "Prompt"
    OUTPUT = "output", "Output"


class EscalationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    BLOCKED = "blocked", "Blocked"


class Escalation(models.Model):
    """A prompt (before the model) or an answer (after it) waiting for a human decision."""

    request = models.ForeignKey("inference.InferenceRequest", on_delete=models.PROTECT, related_name="escalations")
    direction = models.CharField(max_length=8, choices=Direction.choices)
    severity = models.CharField(max_length=8, choices=Severity.choices)
    severity_rank = models.PositiveSmallIntegerField(default=0, help_text="0 low … 3 critical, for sorting")
    reason_codes = models.JSONField(default=list)
    hits = models.JSONField(default=list)
    status = models.CharField(max_length=8, choices=EscalationStatus.choices, default=EscalationStatus.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    due_at = models.DateTimeField()
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    claim_expires_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_by_label = models.CharField(max_length=200, blank=True, default="")
    reviewer_ref = models.CharField(max_length=200, blank=True, default="", help_text="reviewer_id given by API calls")
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.TextField(blank=True, default="")

    class Meta:
        indexes = [
            models.Index(fields=["status", "-severity_rank", "created_at"], name="review_queue_order"),
        ]

    def __str__(self) -> str:
        return f"Escalation {self.pk} ({self.severity}, {self.status})"
