"""The append-only audit trail."""

from django.conf import settings
from django.db import models


class AuditEvent(models.Model):
    """One thing that happened. Written only by ``audits.services.audit_event_record``."""

    seq = models.BigIntegerField(unique=True, null=True, editable=False)
    ticket_id = models.CharField(max_length=40, unique=True, editable=False)
    created_at = models.DateTimeField(db_index=True, editable=False)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, db_constraint=False, editable=False
    )
    actor_label = models.CharField(max_length=200, editable=False)
    action = models.CharField(max_length=100, db_index=True, editable=False)
    subject_type = models.CharField(max_length=100, blank=True, editable=False)
    subject_id = models.CharField(max_length=100, blank=True, db_index=True, editable=False)
    subject_repr = models.CharField(max_length=300, blank=True, editable=False)
    request_id = models.CharField(max_length=64, blank=True, db_index=True, editable=False)
    trace_id = models.CharField(max_length=64, blank=True, editable=False)
    data = models.JSONField(default=dict, blank=True, editable=False)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.ticket_id} {self.action}"
