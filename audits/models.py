"""The append-only audit trail: events linked by a hash chain, and signed checkpoints over the chain head."""

import json

from django.conf import settings
from django.db import models

from audits.chain import canonical_json

APPEND_ONLY = "The audit trail is append-only: events and checkpoints cannot be changed or deleted."
USE_SERVICE = "Audit events are written only by audits.services.audit_event_record."


class AppendOnlyError(Exception):
    """Raised on any attempt to update or delete audit rows through the ORM."""


class CanonicalJSONField(models.TextField):
    """JSON kept as its canonical text (sorted keys, ASCII), so the chain hashes exactly the stored bytes."""

    def from_db_value(self, value, expression, connection):
        return None if value is None else json.loads(value)

    def to_python(self, value):
        return json.loads(value) if isinstance(value, str) else value

    def get_prep_value(self, value):
        return value if value is None or isinstance(value, str) else canonical_json(value)

    def value_to_string(self, obj):
        return canonical_json(self.value_from_object(obj))


class AppendOnlyQuerySet(models.QuerySet):
    """Reads only: bulk writes would bypass the chain, updates and deletes would break it."""

    def update(self, **kwargs):
        raise AppendOnlyError(APPEND_ONLY)

    def delete(self):
        raise AppendOnlyError(APPEND_ONLY)

    def bulk_update(self, objs, fields, batch_size=None):
        raise AppendOnlyError(APPEND_ONLY)

    def bulk_create(self, objs, *args, **kwargs):
        raise AppendOnlyError(USE_SERVICE)

    def update_or_create(self, *args, **kwargs):
        raise AppendOnlyError(APPEND_ONLY)

    def _raw_delete(self, *args, **kwargs):
        raise AppendOnlyError(APPEND_ONLY)


class AppendOnlyModel(models.Model):
    """Rows are inserted once (by the audits services, which set ``hash``) and never saved again."""

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError(APPEND_ONLY)
        if not getattr(self, "_chained", False):
            raise AppendOnlyError(USE_SERVICE)
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError(APPEND_ONLY)


class AuditEvent(AppendOnlyModel):
    """One thing that happened. Written only by ``audits.services.audit_event_record``.

    ``seq``/``prev_hash``/``hash`` chain the events (audits/chain.py lists the chained fields); they are empty
    until the event's transaction has committed and ``audit_chain_seal`` has linked it (the only UPDATE the
    database allows, once). The actor is
    kept twice: the foreign key (which may dangle once the user is deleted) and a frozen label.
    ``principal_ciphertext`` is outside the chain; its plaintext must match the chained pseudonym.
    """

    seq = models.BigIntegerField(unique=True, null=True, blank=True, editable=False)
    ticket_id = models.CharField(max_length=40, editable=False)  # unique: Meta.constraints
    created_at = models.DateTimeField(db_index=True, editable=False)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,  # SET_NULL would UPDATE audit rows, which the trigger refuses
        db_constraint=False,
        db_index=False,  # nothing looks events up by the actor's key (the admin filters on actor_label)
        editable=False,
        related_name="+",
    )
    actor_label = models.CharField(max_length=200, editable=False)
    action = models.CharField(max_length=100, editable=False)
    subject_type = models.CharField(max_length=100, blank=True, editable=False)
    subject_id = models.CharField(max_length=100, blank=True, editable=False)
    subject_repr = models.CharField(max_length=300, blank=True, editable=False)
    request_id = models.CharField(max_length=64, blank=True, editable=False)
    trace_id = models.CharField(max_length=64, blank=True, editable=False)
    principal_pseudonym = models.CharField(max_length=40, blank=True, editable=False)
    principal_ciphertext = models.TextField(blank=True, editable=False)
    data = CanonicalJSONField(default=dict, blank=True, editable=False)
    prev_hash = models.CharField(max_length=64, blank=True, editable=False)
    hash = models.CharField(max_length=64, blank=True, editable=False)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        default_permissions = ("view",)
        # Every index costs each event twice (its INSERT and its sealing UPDATE). Exact look-ups only, so plain
        # btrees: db_index/unique on a CharField would add a second, varchar_pattern_ops copy on PostgreSQL.
        constraints = [models.UniqueConstraint(fields=["ticket_id"], name="audits_event_ticket_unique")]
        indexes = [
            models.Index(fields=["action"], name="audits_event_action"),
            models.Index(fields=["subject_id"], name="audits_event_subject_id"),
            models.Index(fields=["request_id"], name="audits_event_request_id"),
            models.Index(fields=["principal_pseudonym"], name="audits_event_pseudonym"),
            models.Index(fields=["actor_label", "created_at"], name="audits_actor_created"),
            # The sealer's queue: events committed but not chained yet.
            models.Index(fields=["id"], condition=models.Q(seq__isnull=True), name="audits_pending_seal"),
        ]

    def __str__(self) -> str:
        return f"{self.ticket_id} {self.action}"

    def chained_values(self) -> tuple:
        from audits.chain import canonical_time

        return (
            self.seq, self.prev_hash, self.ticket_id, canonical_time(self.created_at), self.actor_id,
            self.actor_label, self.action, self.subject_type, self.subject_id, self.subject_repr, self.request_id,
            self.trace_id, self.principal_pseudonym, canonical_json(self.data),
        )  # fmt: skip


class AuditCheckpoint(AppendOnlyModel):
    """An Ed25519 signature over the chain head (``seq``, ``head_hash``) at ``created_at``."""

    seq = models.BigIntegerField(unique=True, editable=False)
    head_hash = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(editable=False)
    public_key = models.CharField(max_length=64, editable=False, help_text="Ed25519 public key, hex")
    signature = models.CharField(max_length=128, editable=False, help_text="Ed25519 signature, hex")

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["-seq"]
        default_permissions = ("view",)

    def __str__(self) -> str:
        return f"checkpoint at #{self.seq}"
