"""The single writer of the audit trail, its checkpoints, the lawful reveal and the content purge."""

import functools
import hashlib
import json
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from audits import sealer, signing
from audits.chain import GENESIS_HASH, canonical_json, canonical_time, checkpoint_message, event_hash
from audits.models import AuditCheckpoint, AuditEvent
from safety_admin import context
from safety_admin.privacy import decrypt_identifier, encrypt_identifier, pseudonymize

log = logging.getLogger(__name__)
# One PostgreSQL advisory lock lets one sealer at a time extend the chain.
CHAIN_LOCK_KEY = 0x5AFE_A0D1
REVEAL_FORBIDDEN = "Only privileged staff may reveal an identity."
REVEAL_NEEDS_REASON = "Give the legal basis or case reference for this reveal."
REVEAL_NOTHING = "This event holds no encrypted identity."
REVEAL_MISMATCH = "The encrypted identity does not match the chained pseudonym; the event was tampered with."

ACTION_REVEALED = "audits.identity.revealed"
ACTION_PURGED = "audits.content.purged"
ACTION_VERIFIED = "audits.chain.verified"
ACTION_BROKEN = "audits.chain.broken"

# Per-process hint of when this process last saw a checkpoint, to avoid a query per append.
_last_checkpoint_seen: float | None = None


def _new_ticket_id() -> str:
    return f"audit-{secrets.token_hex(10)}"


def _clean_text(value: Any, limit: int) -> str:
    # PostgreSQL text cannot hold NUL; cut to the column size so a long label never fails the caller's change.
    return str(value or "").replace("\x00", "\ufffd")[:limit]


def _str_keys(value: Any) -> bool:
    """True when every dict inside ``value`` has only str keys (JSON would turn other keys into strings).

    A loop over a stack rather than recursion through generators: it runs on every audited request."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, inner in item.items():
                if type(key) is not str:
                    return False
                if isinstance(inner, dict | list | tuple):
                    stack.append(inner)
        elif isinstance(item, list | tuple):
            stack.extend(inner for inner in item if isinstance(inner, dict | list | tuple))
    return True


def _canonical_data(data: dict[str, Any] | None) -> str:
    """Canonical JSON for ``data``; dates, decimals and UUIDs become strings as in Django's encoder.

    One encoding pass when every key is a str; otherwise through a JSON round trip, so non-str keys are sorted
    as the strings they become (the text must equal ``canonical_json(json.loads(text))``, which export relies on).
    """
    if not data:
        return "{}"
    if _str_keys(data):
        return json.dumps(data, cls=DjangoJSONEncoder, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return canonical_json(json.loads(json.dumps(data, cls=DjangoJSONEncoder)))


def content_digest(content: dict[str, str]) -> str:
    """SHA-256 over canonical JSON of ``content`` (e.g. user_input, system_prompt, response): what the chain keeps."""
    return hashlib.sha256(canonical_json(content).encode()).hexdigest()


def _lock_chain(*, wait: bool) -> bool:
    """Take the sealing lock for this transaction (PostgreSQL advisory lock); False if busy and not waiting.

    SQLite: the project opens every transaction IMMEDIATE, so this transaction already holds the write lock.
    """
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        if wait:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHAIN_LOCK_KEY])
            return True
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [CHAIN_LOCK_KEY])
        return bool(cursor.fetchone()[0])


def _chain_head() -> tuple[int, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT seq, hash FROM audits_auditevent WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1")
        row = cursor.fetchone()
    return (row[0], row[1]) if row else (0, GENESIS_HASH)


# The INSERT's columns, in its order.
_INSERTED = ("ticket_id", "created_at", "actor_id", "actor_label", "action", "subject_type", "subject_id",
             "subject_repr", "request_id", "trace_id", "principal_pseudonym", "principal_ciphertext",
             "data")  # fmt: skip


@functools.cache
def _concrete_fields() -> tuple:
    return tuple(AuditEvent._meta.concrete_fields)


_INSERT = (
    "INSERT INTO audits_auditevent (ticket_id, created_at, actor_id, actor_label, action, subject_type,"
    " subject_id, subject_repr, request_id, trace_id, principal_pseudonym, principal_ciphertext, data,"
    " prev_hash, hash) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, '', '') RETURNING id"
)


@dataclass(frozen=True)
class PreparedEvent:
    """An audit event ready to be inserted: ``sql`` (an ``INSERT … RETURNING id``) with ``params``.

    Made by ``audit_event_prepare`` for callers that send the event in the same statement as their own rows;
    ``saved(pk)`` must follow once it has run.
    """

    sql: str
    params: list
    row: dict
    actor: Any = None

    def saved(self, pk: int) -> AuditEvent:
        """The stored event (``pk`` from the INSERT's RETURNING); asks for the seal once the transaction commits."""
        row = {**self.row, "id": pk, "data": json.loads(self.row["data"])}
        # Built the way Django builds fetched rows (positional: no per-field keyword handling).
        event = AuditEvent.from_db(connection.alias, None, [row[field.attname] for field in _concrete_fields()])
        if row["actor_id"]:
            event.actor = self.actor
        transaction.on_commit(sealer.request_seal, robust=True)
        return event


def audit_event_prepare(
    *,
    action: str,
    actor=None,
    actor_label: str = "",
    subject_type: str = "",
    subject_id: str = "",
    subject_repr: str = "",
    request_id: str = "",
    trace_id: str = "",
    data: dict[str, Any] | None = None,
    principal_id: str = "",
    content: dict[str, str] | None = None,
) -> PreparedEvent:
    """The INSERT of one event, not run yet: ``audit_event_record`` without the round trip (same arguments).

    For a caller that must send the event in one statement with its own change (``safety_admin.db.insert_then``).
    The statement must run inside the change's transaction (or be that single atomic statement), and
    ``PreparedEvent.saved`` be called with the returned id. No side effects by itself.
    """
    ctx = context.current()
    label = actor_label or (getattr(actor, "username", "") if actor is not None else "") or "system"
    payload = dict(data or {})
    if content is not None:
        payload["content_sha256"] = content_digest(content)
    ticket_id = _new_ticket_id()
    row = {
        "id": None, "seq": None, "ticket_id": ticket_id, "created_at": timezone.now(),
        "actor_id": actor.pk if getattr(actor, "pk", None) else None, "actor_label": _clean_text(label, 200),
        "action": _clean_text(action, 100), "subject_type": _clean_text(subject_type, 100),
        "subject_id": _clean_text(subject_id, 100), "subject_repr": _clean_text(subject_repr, 300),
        "request_id": _clean_text(request_id or ctx.request_id, 64),
        "trace_id": _clean_text(trace_id or ctx.trace_id, 64), "principal_pseudonym": pseudonymize(principal_id),
        "principal_ciphertext": encrypt_identifier(principal_id, context=ticket_id),
        "data": _canonical_data(payload), "prev_hash": "", "hash": "",
    }  # fmt: skip
    params = [row[name] for name in _INSERTED]
    params[1] = connection.ops.adapt_datetimefield_value(row["created_at"])
    return PreparedEvent(sql=_INSERT, params=params, row=row, actor=actor)


def audit_event_record(
    *,
    action: str,
    actor=None,
    actor_label: str = "",
    subject_type: str = "",
    subject_id: str = "",
    subject_repr: str = "",
    request_id: str = "",
    trace_id: str = "",
    data: dict[str, Any] | None = None,
    principal_id: str = "",
    content: dict[str, str] | None = None,
) -> AuditEvent:
    """Record one event. Call it inside the transaction of the change it records.

    ``principal_id`` (a user or API principal identifier) is stored as its keyed pseudonym (chained) and
    AES-GCM ciphertext (for the lawful reveal), never in clear. ``content`` (prompt/output text) is never
    stored: only its digest goes into ``data["content_sha256"]``.

    A single INSERT, so it needs no transaction (or savepoint) of its own.

    Side effects: one AuditEvent row, not yet chained; after the enclosing transaction commits, the chain is
    sealed (``audit_chain_seal``), which gives the event its ``seq``, ``prev_hash`` and ``hash``. Writers never
    wait for one another: only committed events are chained, so a rolled-back change leaves no gap.
    """
    prepared = audit_event_prepare(
        action=action, actor=actor, actor_label=actor_label, subject_type=subject_type, subject_id=subject_id,
        subject_repr=subject_repr, request_id=request_id, trace_id=trace_id, data=data, principal_id=principal_id,
        content=content,
    )  # fmt: skip
    # One plain INSERT: this runs on every request, and the ORM's save() costs twice the CPU of the statement.
    with connection.cursor() as cursor:
        cursor.execute(prepared.sql, prepared.params)
        pk = cursor.fetchone()[0]
    return prepared.saved(pk)


_PENDING = ("SELECT id, ticket_id, created_at, actor_id, actor_label, action, subject_type, subject_id, subject_repr,"
            " request_id, trace_id, principal_pseudonym, data FROM audits_auditevent WHERE seq IS NULL"
            " ORDER BY id LIMIT %s")  # fmt: skip


def _maybe_checkpoint(first_seq: int, head_seq: int, head_hash: str) -> None:
    """Sign the head when the batch crossed a multiple of AUDIT_CHECKPOINT_EVERY or the last checkpoint is old."""
    global _last_checkpoint_seen
    every = max(settings.AUDIT_CHECKPOINT_EVERY, 1)
    if head_seq // every > (first_seq - 1) // every:
        _checkpoint_write(head_seq, head_hash)
    elif _last_checkpoint_seen is None or time.monotonic() - _last_checkpoint_seen > settings.AUDIT_CHECKPOINT_SECONDS:
        latest = AuditCheckpoint.objects.order_by("-seq").values_list("created_at", flat=True).first()
        if latest is None or timezone.now() - latest >= timedelta(seconds=settings.AUDIT_CHECKPOINT_SECONDS):
            _checkpoint_write(head_seq, head_hash)
        _last_checkpoint_seen = time.monotonic()


def _seal_round_python(batch_size: int, wait: bool) -> int:
    """One sealing transaction computed here (SQLite, where IMMEDIATE transactions serialise writers)."""
    with transaction.atomic():
        if not _lock_chain(wait=wait):
            return -1
        with connection.cursor() as cursor:
            cursor.execute(_PENDING, [batch_size])
            pending = cursor.fetchall()
        if not pending:
            return 0
        last_seq, prev = _chain_head()
        rows = []
        for pk, ticket, created, *rest in pending:  # rest: the chained fields after created_at, in order
            last_seq += 1
            digest = event_hash((last_seq, prev, ticket, canonical_time(created), *rest))
            rows.append((last_seq, prev, digest, pk))
            prev = digest
        with connection.cursor() as cursor:
            cursor.executemany("UPDATE audits_auditevent SET seq = %s, prev_hash = %s, hash = %s WHERE id = %s", rows)
        _maybe_checkpoint(rows[0][0], last_seq, prev)
    return len(rows)


def _seal_round_postgres(batch_size: int, wait: bool) -> int:
    """One round trip: the ``audits_seal`` function (migration 0006) chains pending events in the database.

    It computes the same hashes as audits/chain.py (the verifier recomputes them in Python) and commits
    asynchronously when called outside a transaction. -1 when ``wait`` is false and the lock is busy.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT first_seq, head_seq, head_hash, sealed FROM audits_seal(%s, %s)", [batch_size, wait])
        row = cursor.fetchone()
    if row is None:
        return -1
    first_seq, head_seq, head_hash, sealed = row
    if sealed:
        _maybe_checkpoint(first_seq, head_seq, head_hash)
    return sealed


def audit_chain_seal(*, batch_size: int = 2000, max_rounds: int = 50) -> int:
    """Chain every committed, not yet chained event, in id order; returns how many were chained.

    One sealer at a time: a caller waits for the advisory lock (sealing transactions are short and never wait
    for a disk flush), and once it holds it, sees every event committed before it asked, its own included.
    On PostgreSQL the sealing transaction commits asynchronously: it only derives data from events that are
    already durable, and a seal lost in a crash is simply redone by the next sealer.

    Side effects: sets seq/prev_hash/hash of pending events; signed checkpoints (see ``_maybe_checkpoint``).
    """
    seal_round = _seal_round_postgres if connection.vendor == "postgresql" else _seal_round_python
    sealed = 0
    for _ in range(max_rounds):
        count = seal_round(batch_size, True)
        sealed += max(count, 0)
        if count < batch_size:
            break
    return sealed


def _checkpoint_write(seq: int, head_hash: str) -> AuditCheckpoint:
    created = timezone.now()
    checkpoint = AuditCheckpoint(
        seq=seq,
        head_hash=head_hash,
        created_at=created,
        public_key=signing.public_key_hex(),
        signature=signing.sign(checkpoint_message(seq, head_hash, canonical_time(created))),
    )
    checkpoint._chained = True
    try:
        with transaction.atomic():
            checkpoint.save()
    except IntegrityError:  # audit_checkpoint_create signed the same head a moment ago
        return AuditCheckpoint.objects.get(seq=seq)
    return checkpoint


def audit_checkpoint_create() -> AuditCheckpoint | None:
    """Seal pending events, then sign the chain head unless a checkpoint already covers it.

    Side effects: chains pending events; at most one AuditCheckpoint row.
    """
    audit_chain_seal()
    with transaction.atomic():
        _lock_chain(wait=True)
        last_seq, last_hash = _chain_head()
        if last_seq == 0 or AuditCheckpoint.objects.filter(seq=last_seq).exists():
            return None
        return _checkpoint_write(last_seq, last_hash)


def user_is_privileged_staff(user) -> bool:
    """Staff with the privileged tier: the only people who may reveal an identity."""
    return bool(user is not None and user.is_active and user.is_staff and getattr(user, "tier", "") == "privileged")


@transaction.atomic
def audit_identity_reveal(*, event: AuditEvent, actor, reason: str) -> str:
    """Decrypt the identity behind ``event``'s pseudonym for a lawful request and return it.

    Side effects: audit event ``audits.identity.revealed`` naming the revealer, the event and the reason
    (not the identity itself). Raises PermissionDenied for anyone but privileged staff.
    """
    if not user_is_privileged_staff(actor):
        raise PermissionDenied(REVEAL_FORBIDDEN)
    reason = reason.strip()
    if len(reason) < 5:
        raise ValidationError(REVEAL_NEEDS_REASON)
    if not event.principal_ciphertext:
        raise ValidationError(REVEAL_NOTHING)
    try:
        identity = decrypt_identifier(event.principal_ciphertext, context=event.ticket_id)
    except ValueError:
        raise ValidationError(REVEAL_MISMATCH) from None
    if pseudonymize(identity) != event.principal_pseudonym:
        raise ValidationError(REVEAL_MISMATCH)
    audit_event_record(
        action=ACTION_REVEALED,
        actor=actor,
        subject_type="audits.event",
        subject_id=event.ticket_id,
        subject_repr=f"{event.ticket_id} {event.action}"[:300],
        data={"seq": event.seq, "pseudonym": event.principal_pseudonym, "reason": reason[:1000]},
    )
    return identity


def audit_verification_record(*, result, actor_label: str = "verify_audit_chain") -> AuditEvent:
    """Write the outcome of a chain verification into the chain itself (the admin index shows the latest).

    Side effects: audit event ``audits.chain.verified`` or ``audits.chain.broken``.
    """
    return audit_event_record(
        action=ACTION_VERIFIED if result.ok else ACTION_BROKEN,
        actor_label=actor_label,
        subject_type="audits.chain",
        subject_id=str(result.last_seq),
        subject_repr=f"events 1..{result.last_seq}",
        data=result.as_dict(),
    )


PURGED_FIELDS = ("user_input", "system_prompt", "response")


def content_purge(*, older_than_days: int | None = None, batch_size: int = 500, now=None) -> int:
    """Blank prompt, system prompt and answer of requests older than the retention period.

    Requests with a pending escalation keep their content. Each batch is one transaction with one audit
    event ``audits.content.purged`` that lists the purged request ids with the SHA-256 of their content,
    so the trail still proves what was there. Returns the number of requests purged.
    """
    from django.apps import apps  # audits imports no project app at module level

    InferenceRequest = apps.get_model("inference", "InferenceRequest")
    days = settings.CONTENT_RETENTION_DAYS if older_than_days is None else older_than_days
    cutoff = (now or timezone.now()) - timedelta(days=days)
    candidates = (
        InferenceRequest.objects.filter(created_at__lt=cutoff, content_purged_at__isnull=True)
        .exclude(escalations__status="pending")
        .order_by("created_at")
    )
    total = 0
    while True:
        with transaction.atomic():
            rows = list(candidates.select_for_update(of=("self",)).values("pk", *PURGED_FIELDS)[:batch_size])
            if not rows:
                return total
            stamp = timezone.now()
            InferenceRequest.objects.filter(pk__in=[r["pk"] for r in rows]).update(
                user_input="", system_prompt="", response="", content_purged_at=stamp
            )
            audit_event_record(
                action=ACTION_PURGED,
                actor_label="retention",
                subject_type="inference.request",
                subject_repr=f"{len(rows)} requests older than {days} days",
                data={
                    "retention_days": days,
                    "cutoff": cutoff.isoformat(),
                    "count": len(rows),
                    "content_sha256": {str(r["pk"]): content_digest({f: r[f] for f in PURGED_FIELDS}) for r in rows},
                },
            )
            total += len(rows)
