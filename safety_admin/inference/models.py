"""Requests to the model and their lifecycle."""

import uuid

from django.db import models


class RequestStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    COMPLETED = "completed", "Completed"
    IN_REVIEW = "in_review", "In review"
    BLOCKED = "blocked", "Blocked"
    FAILED = "failed", "Failed"
    REFUSED = "refused", "Refused by the pre-check"


# What GET /safety/status shows for each internal status (DESIGN.md §2 has no "refused").
API_STATUS = {RequestStatus.REFUSED: "blocked"}
FINAL_STATUSES = (RequestStatus.COMPLETED, RequestStatus.BLOCKED, RequestStatus.FAILED, RequestStatus.REFUSED)


class InferenceRequest(models.Model):
    """One prompt sent through the gateway. The row is the source of truth; RQ jobs only carry its id.

    Status moves by conditional updates (``filter(status=...).update``), so a job that runs twice
    changes nothing the second time.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    principal_id = models.CharField(max_length=200, help_text="Who called: apikey:<prefix>, envkey:<hash>, jwt:<sub>")
    # Indexed by inference_principal_created (pseudonym first): a second index would only slow every insert.
    principal_pseudonym = models.CharField(max_length=40)
    principal_tier = models.CharField(max_length=16)
    profile = models.CharField(max_length=100, blank=True, default="")
    status = models.CharField(max_length=16, choices=RequestStatus.choices, default=RequestStatus.PENDING)
    user_input = models.TextField()
    system_prompt = models.TextField(blank=True, default="")
    model_name = models.CharField(max_length=200, blank=True, default="")
    metadata = models.JSONField(default=dict, blank=True)
    response = models.TextField(blank=True, default="")
    response_truncated = models.BooleanField(default=False)
    reason_codes = models.JSONField(default=list, blank=True)
    hits = models.JSONField(default=list, blank=True)
    severity = models.CharField(max_length=16, blank=True, default="")
    failure_reason = models.CharField(max_length=300, blank=True, default="")
    policy_version = models.CharField(max_length=40, blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    trace_id = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    content_purged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["status", "updated_at"], name="inference_status_updated"),
            models.Index(fields=["principal_pseudonym", "created_at"], name="inference_principal_created"),
        ]

    def __str__(self) -> str:
        return f"{self.id} ({self.status})"

    @property
    def api_status(self) -> str:
        return API_STATUS.get(self.status, self.status)

    @property
    def job_id(self) -> str:
        """The RQ job id is derived from the request id, so re-enqueueing never duplicates a job."""
        return f"infer-{self.id}"
