import hashlib
import re
from datetime import UTC, datetime

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.db.utils import IntegrityError, InternalError, ProgrammingError

from audits.chain import GENESIS_HASH, canonical_json, event_hash
from audits.models import APPEND_ONLY, USE_SERVICE, AppendOnlyError, AuditCheckpoint, AuditEvent
from audits.services import (
    ACTION_REVEALED,
    REVEAL_FORBIDDEN,
    REVEAL_MISMATCH,
    REVEAL_NEEDS_REASON,
    audit_chain_seal,
    audit_checkpoint_create,
    audit_event_prepare,
    audit_event_record,
    audit_identity_reveal,
)
from safety_admin import context
from safety_admin.accounts.models import User
from safety_admin.privacy import decrypt_identifier, pseudonymize
from tests.audits.conftest import tamper

pytestmark = pytest.mark.django_db
# PostgreSQL raises insufficient_privilege (ProgrammingError); SQLite an IntegrityError.
REFUSED = (IntegrityError, InternalError, ProgrammingError)


def test_record_stores_every_field_and_links_to_the_previous_event():
    user = User.objects.create(username="alice", tier="privileged", is_staff=True)
    token = context.bind(request_id="req-1", trace_id="trace-1")
    try:
        first = audit_event_record(action="tests.first")
        second = audit_event_record(
            action="tests.second", actor=user, subject_type="tests.thing", subject_id=7, subject_repr="thing 7",
            data={"when": datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC), "n": 2}, principal_id="apikey:abcd",
        )  # fmt: skip
    finally:
        context.reset(token)
    unchained = (first.seq, first.prev_hash, first.hash)
    audit_chain_seal()  # what the on-commit hook does once the transaction commits

    first, second = AuditEvent.objects.get(pk=first.pk), AuditEvent.objects.get(pk=second.pk)
    assert unchained == (None, "", "")
    assert (first.seq, first.prev_hash, first.actor_label) == (1, GENESIS_HASH, "system")
    assert (second.seq, second.prev_hash) == (2, first.hash)
    assert (second.actor_id, second.actor_label, second.action, second.subject_type, second.subject_id,
            second.subject_repr, second.request_id, second.trace_id) == (
        user.pk, "alice", "tests.second", "tests.thing", "7", "thing 7", "req-1", "trace-1")  # fmt: skip
    assert second.data == {"when": "2026-01-02T03:04:05.678Z", "n": 2}
    assert re.fullmatch(r"audit-[0-9a-f]{20}", second.ticket_id)
    assert second.principal_pseudonym == pseudonymize("apikey:abcd")
    assert "abcd" not in second.principal_ciphertext
    assert decrypt_identifier(second.principal_ciphertext, context=second.ticket_id) == "apikey:abcd"
    assert second.hash == event_hash(second.chained_values())


def test_content_is_kept_only_as_a_digest():
    content = {"user_input": "how do I bake bread", "response": "knead it"}

    event = audit_event_record(action="tests.content", content=content, data={"a": 1})

    digest = hashlib.sha256(canonical_json(content).encode()).hexdigest()
    assert AuditEvent.objects.get(pk=event.pk).data == {"a": 1, "content_sha256": digest}


def test_checkpoint_every_n_events_is_signed_over_the_head(settings):
    settings.AUDIT_CHECKPOINT_EVERY = 3
    settings.AUDIT_CHECKPOINT_SECONDS = 3600

    for _ in range(7):
        audit_event_record(action="tests.n")
        audit_chain_seal()
    hashes = dict(AuditEvent.objects.values_list("seq", "hash"))

    # The first seal checkpoints because none exists yet; then every 3rd seq.
    assert list(AuditCheckpoint.objects.order_by("seq").values_list("seq", "head_hash")) == [
        (1, hashes[1]), (3, hashes[3]), (6, hashes[6])]  # fmt: skip
    assert audit_checkpoint_create().seq == 7
    assert audit_checkpoint_create() is None


def test_orm_update_and_delete_raise(events):
    event = events(2)[0]

    for attempt in (
        lambda: AuditEvent.objects.filter(pk=event.pk).update(action="x"),
        lambda: AuditEvent.objects.all().delete(),
        lambda: event.delete(),
        lambda: event.save(),
        lambda: AuditEvent.objects.bulk_update([event], ["action"]),
        lambda: AuditCheckpoint.objects.all().delete(),
    ):
        with pytest.raises(AppendOnlyError, match=APPEND_ONLY):
            attempt()
    with pytest.raises(AppendOnlyError, match=USE_SERVICE):
        AuditEvent(action="forged", seq=99, ticket_id="audit-x").save()
    with pytest.raises(AppendOnlyError, match=USE_SERVICE):
        AuditEvent.objects.bulk_create([AuditEvent(action="forged")])
    assert AuditEvent.objects.get(pk=event.pk).action == "tests.thing.done"


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audits_auditevent SET action = 'forged'",
        "UPDATE audits_auditevent SET seq = seq + 100",
        "DELETE FROM audits_auditevent",
        "TRUNCATE audits_auditevent",
        "UPDATE audits_auditcheckpoint SET head_hash = 'x'",
        "DELETE FROM audits_auditcheckpoint",
        "TRUNCATE audits_auditcheckpoint CASCADE",
    ],
)
def test_raw_sql_changes_are_refused_by_the_database(events, sql):
    events(1)
    audit_checkpoint_create()
    with connection.cursor() as cursor:
        # The test suite lets Django's flush TRUNCATE; a normal session has no such flag.
        cursor.execute("SET LOCAL audits.allow_truncate = 'off'")
        with (
            pytest.raises(REFUSED, match="append-only"),
            transaction.atomic(),
        ):
            cursor.execute(sql)
    assert (AuditEvent.objects.count(), AuditCheckpoint.objects.count()) == (1, 1)


def _staff(username: str, tier: str) -> User:
    return User.objects.create(username=username, tier=tier, is_staff=True)


def test_reveal_by_privileged_staff_returns_the_identity_and_is_audited(events):
    event = audit_event_record(action="tests.request.refused", principal_id="jwt:carol")
    officer = _staff("officer", "privileged")

    identity = audit_identity_reveal(event=event, actor=officer, reason="Court order 2026/117")

    assert identity == "jwt:carol"
    record = AuditEvent.objects.order_by("-id").first()
    assert (record.action, record.actor_id, record.subject_type, record.subject_id, record.data) == (
        ACTION_REVEALED, officer.pk, "audits.event", event.ticket_id,
        {"seq": None, "pseudonym": pseudonymize("jwt:carol"), "reason": "Court order 2026/117"},
    )  # fmt: skip


@pytest.mark.parametrize(("tier", "staff"), [("verified", True), ("privileged", False)])
def test_reveal_is_refused_to_anyone_but_privileged_staff(tier, staff):
    event = audit_event_record(action="tests.x", principal_id="jwt:carol")
    user = User.objects.create(username="someone", tier=tier, is_staff=staff)

    with pytest.raises(PermissionDenied, match=REVEAL_FORBIDDEN):
        audit_identity_reveal(event=event, actor=user, reason="Court order 1")
    assert AuditEvent.objects.filter(action=ACTION_REVEALED).count() == 0


def test_reveal_needs_a_reason_and_detects_a_swapped_ciphertext():
    officer = _staff("officer", "privileged")
    carol = audit_event_record(action="tests.x", principal_id="jwt:carol")
    dave = audit_event_record(action="tests.x", principal_id="jwt:dave")

    with pytest.raises(ValidationError, match=REVEAL_NEEDS_REASON):
        audit_identity_reveal(event=carol, actor=officer, reason="  ")
    # Someone with database access moves Dave's ciphertext onto Carol's event.
    tamper(
        "UPDATE audits_auditevent SET principal_ciphertext = %s WHERE id = %s", [dave.principal_ciphertext, carol.pk]
    )
    with pytest.raises(ValidationError, match=REVEAL_MISMATCH):
        audit_identity_reveal(event=AuditEvent.objects.get(pk=carol.pk), actor=officer, reason="Court order 2")


def test_only_the_one_time_sealing_update_is_allowed():
    event = audit_event_record(action="tests.pending")
    with connection.cursor() as cursor:
        with pytest.raises(REFUSED, match="append-only"), transaction.atomic():
            cursor.execute("UPDATE audits_auditevent SET action = 'forged', seq = 1 WHERE id = %s", [event.pk])
        cursor.execute("UPDATE audits_auditevent SET seq = 1, prev_hash = 'a', hash = 'b' WHERE id = %s", [event.pk])
        with pytest.raises(REFUSED, match="append-only"), transaction.atomic():
            cursor.execute(
                "UPDATE audits_auditevent SET seq = 2, prev_hash = 'c', hash = 'd' WHERE id = %s", [event.pk]
            )
    assert AuditEvent.objects.values_list("seq", "prev_hash", "hash", "action").get() == (1, "a", "b", "tests.pending")


@pytest.mark.parametrize(
    "change",
    ["principal_ciphertext = 'v1:forged'", "data = '{}'", "created_at = now()", "actor_id = 42", "id = id + 1"],
)
def test_sealing_cannot_change_any_other_column(change):
    event = audit_event_record(action="tests.pending", principal_id="apikey:abcd", data={"a": 1})
    with connection.cursor() as cursor, pytest.raises(REFUSED, match="append-only"), transaction.atomic():
        cursor.execute(f"UPDATE audits_auditevent SET seq = 1, prev_hash = 'a', hash = 'b', {change} WHERE id = %s",
                       [event.pk])  # fmt: skip
    assert AuditEvent.objects.get(pk=event.pk).seq is None


def test_data_is_stored_as_canonical_json_whatever_its_keys():
    from decimal import Decimal
    from uuid import UUID

    data = {"b": [1, {"z": 2, "a": (3, 4)}], "a": Decimal("1.50"), "u": UUID(int=1), "é": "ü"}
    mixed = {10: "ten", 9: "nine", "8": None}  # JSON turns keys into strings, then "10" sorts before "8" and "9"

    first, second = (
        audit_event_record(action="tests.data", data=data),
        audit_event_record(action="tests.data", data=mixed),
    )

    texts = dict(AuditEvent.objects.values_list("pk", "data").filter(pk__in=[first.pk, second.pk]).order_by())
    raw = {pk: canonical_json(value) for pk, value in texts.items()}
    assert raw[first.pk] == ('{"a":"1.50","b":[1,{"a":[3,4],"z":2}],"u":"00000000-0000-0000-0000-000000000001",'
                             '"\\u00e9":"\\u00fc"}')  # fmt: skip
    assert raw[second.pk] == '{"10":"ten","8":null,"9":"nine"}'
    with connection.cursor() as cursor:
        cursor.execute("SELECT data FROM audits_auditevent WHERE id IN (%s, %s) ORDER BY id", [first.pk, second.pk])
        assert [row[0] for row in cursor.fetchall()] == [raw[first.pk], raw[second.pk]]
    assert (first.data, second.data) == (texts[first.pk], texts[second.pk])


@pytest.mark.django_db(transaction=True)
def test_a_prepared_event_is_inserted_by_the_caller_and_chained_like_any_other():
    user = User.objects.create(username="bob")
    prepared = audit_event_prepare(action="tests.prepared", actor=user, data={"n": 1}, principal_id="apikey:abcd")
    assert AuditEvent.objects.count() == 0  # nothing sent yet

    with connection.cursor() as cursor:  # the caller's own statement, here in autocommit
        cursor.execute(prepared.sql, prepared.params)
        event = prepared.saved(cursor.fetchone()[0])

    stored = AuditEvent.objects.get(pk=event.pk)
    assert (event.ticket_id, event.actor, event.data, event.principal_pseudonym) == (
        stored.ticket_id, user, {"n": 1}, pseudonymize("apikey:abcd"))  # fmt: skip
    assert (stored.seq, stored.hash) == (1, event_hash(stored.chained_values()))  # sealed on commit


@pytest.mark.django_db(transaction=True)
def test_rolled_back_changes_leave_no_gap_and_commits_are_chained_on_commit():
    def failing_change():
        with transaction.atomic():
            audit_event_record(action="tests.rolled_back")
            raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError):
        failing_change()
    audit_event_record(action="tests.kept.1")
    audit_event_record(action="tests.kept.2")

    assert list(AuditEvent.objects.order_by("seq").values_list("seq", "action")) == [
        (1, "tests.kept.1"), (2, "tests.kept.2")]  # fmt: skip
