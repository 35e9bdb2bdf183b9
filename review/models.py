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
    # One sortable number for "severity, then age", so keyset pagination is a single index range scan.
    queue_key = models.BigIntegerField(default=0, help_text="(3 - severity_rank) * 10^16 + created_at in µs")

    class Meta:
        indexes = [
            models.Index(fields=["status", "-severity_rank", "created_at"], name="review_queue_order"),
            models.Index(fields=["status", "queue_key", "id"], name="review_queue_key"),
            models.Index(fields=["decided_at"], name="review_decided_at"),
        ]

    def __str__(self) -> str:
        return f"Escalation {self.pk} ({self.severity}, {self.status})"


QUEUE_KEY_RANK_STEP = 10**16


def queue_key_for(*, severity_rank: int, created_at) -> int:
    """The queue order as one integer: higher severity first, then older first."""
    return (3 - severity_rank) * QUEUE_KEY_RANK_STEP + int(created_at.timestamp() * 1_000_000)


class ProposalStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    ACCEPTED = "accepted", "Accepted"
    REJECTED = "rejected", "Rejected"


class BlocklistProposal(models.Model):
    """Text a reviewer selected in a blocked escalation and proposed as a blocklist entry; admins accept or reject."""

    text = models.CharField(max_length=500)
    reason_code = models.CharField(max_length=40)
    severity = models.CharField(max_length=8, choices=Severity.choices)
    reason = models.CharField(max_length=500, blank=True, default="")
    escalation = models.ForeignKey(Escalation, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    proposed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    proposed_by_label = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    status = models.CharField(max_length=8, choices=ProposalStatus.choices, default=ProposalStatus.PENDING)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_by_label = models.CharField(max_length=200, blank=True, default="")
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["status", "created_at"], name="review_proposal_status")]

    def __str__(self) -> str:
        return f"Proposal {self.pk}: {self.text[:40]!r} ({self.reason_code}, {self.status})"
