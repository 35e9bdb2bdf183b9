import threading

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.core.management import CommandError, call_command
from django.db import connection, connections, transaction

from audits.chain import checkpoint_message, event_hash
from audits.models import AuditEvent
from audits.services import (
    ACTION_BROKEN,
    ACTION_VERIFIED,
    audit_chain_seal,
    audit_checkpoint_create,
    audit_event_record,
)
from audits.verify import (
    BAD_CHECKPOINT_HASH,
    BAD_HASH,
    BAD_LINK,
    BAD_SIGNATURE,
    MISSING,
    MISSING_TAIL,
    UNTRUSTED_KEY,
    verify_chain,
)
from tests.audits.conftest import tamper

pytestmark = pytest.mark.django_db


def _outcome(result):
    return (result.ok, result.first_bad_seq, result.problem)


def test_intact_chain_verifies(events):
    events(6)
    audit_checkpoint_create()

    result = verify_chain()

    assert (result.ok, result.events, result.last_seq, result.last_checkpoint_seq, result.unsigned) == (
        True, 6, 6, 6, 0)  # fmt: skip


def test_changed_field_is_reported_at_its_seq(events):
    events(5)
    tamper("UPDATE audits_auditevent SET actor_label = 'someone else' WHERE seq = 3")

    assert _outcome(verify_chain()) == (False, 3, BAD_HASH)


def test_changed_data_is_reported_at_its_seq(events):
    events(5)
    tamper("""UPDATE audits_auditevent SET data = '{"i":4,"note":"\\u00e9\\ufffd","x":1.5}' WHERE seq = 4""")

    assert _outcome(verify_chain()) == (False, 4, BAD_HASH)


def test_deleted_event_is_reported_as_missing(events):
    events(5)
    tamper("DELETE FROM audits_auditevent WHERE seq = 3")

    assert _outcome(verify_chain()) == (False, 3, MISSING)


def test_deleted_last_event_is_caught_by_the_checkpoint(events):
    events(5)
    audit_checkpoint_create()
    tamper("DELETE FROM audits_auditevent WHERE seq = 5")

    assert _outcome(verify_chain()) == (False, 5, MISSING_TAIL)


def _insert_forged_at(seq: int, *, correct_hash: bool) -> None:
    """Shift events seq.. up by one and insert a forged event at ``seq`` linked to the one before."""
    tamper("UPDATE audits_auditevent SET seq = seq + 1000 WHERE seq >= %s", [seq])
    tamper("UPDATE audits_auditevent SET seq = seq - 999 WHERE seq >= 1000")
    before = AuditEvent.objects.get(seq=seq - 1)
    forged = AuditEvent(seq=seq, prev_hash=before.hash, ticket_id="audit-" + "f" * 20, created_at=before.created_at,
                        actor_label="mallory", action="tests.forged", data={})  # fmt: skip
    digest = event_hash(forged.chained_values()) if correct_hash else "0" * 64
    tamper(
        "INSERT INTO audits_auditevent (seq, prev_hash, hash, ticket_id, created_at, actor_label, action, subject_type,"
        " subject_id, subject_repr, request_id, trace_id, principal_pseudonym, principal_ciphertext, data)"
        " VALUES (%s, %s, %s, %s, %s, 'mallory', 'tests.forged', '', '', '', '', '', '', '', '{}')",
        [seq, before.hash, digest, forged.ticket_id, before.created_at],
    )


def test_inserted_event_is_reported_at_its_seq(events):
    events(5)
    _insert_forged_at(3, correct_hash=False)

    assert _outcome(verify_chain()) == (False, 3, BAD_HASH)


def test_inserted_event_with_a_recomputed_hash_breaks_the_next_link(events):
    events(5)
    _insert_forged_at(3, correct_hash=True)

    # The forged event itself is self-consistent; the original event now at 4 no longer links to it.
    assert _outcome(verify_chain()) == (False, 4, BAD_LINK)


def test_reordered_pair_is_reported_at_the_first_of_the_two(events):
    events(5)
    tamper("UPDATE audits_auditevent SET seq = -2 WHERE seq = 2")
    tamper("UPDATE audits_auditevent SET seq = 2 WHERE seq = 3")
    tamper("UPDATE audits_auditevent SET seq = 3 WHERE seq = -2")

    assert _outcome(verify_chain()) == (False, 2, BAD_LINK)


def test_rewritten_stretch_with_recomputed_hashes_is_caught_by_the_signed_checkpoint(events):
    events(5)
    audit_checkpoint_create()
    tamper("UPDATE audits_auditevent SET actor_label = 'rewritten' WHERE seq = 3")
    prev = AuditEvent.objects.get(seq=2).hash
    for event in AuditEvent.objects.filter(seq__gte=3).order_by("seq"):
        event.prev_hash = prev
        prev = event_hash(event.chained_values())
        tamper(
            "UPDATE audits_auditevent SET prev_hash = %s, hash = %s WHERE seq = %s", [event.prev_hash, prev, event.seq]
        )

    assert _outcome(verify_chain()) == (False, 5, BAD_CHECKPOINT_HASH)


def test_forged_checkpoints_are_reported(events):
    events(4)
    audit_checkpoint_create()
    tamper("UPDATE audits_auditcheckpoint SET signature = repeat('0', 128) WHERE seq = 4")
    assert _outcome(verify_chain()) == (False, 4, BAD_SIGNATURE)

    # A self-made key signs a correct message: valid signature, untrusted key.
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
    with connection.cursor() as cursor:
        cursor.execute("SELECT head_hash, created_at FROM audits_auditcheckpoint WHERE seq = 4")
        head, created = cursor.fetchone()
    from audits.chain import canonical_time

    signature = key.sign(checkpoint_message(4, head, canonical_time(created))).hex()
    tamper("UPDATE audits_auditcheckpoint SET signature = %s, public_key = %s WHERE seq = 4", [signature, public])
    assert _outcome(verify_chain()) == (False, 4, UNTRUSTED_KEY)


def test_command_reports_the_first_bad_seq_and_records_the_outcome(events):
    events(3)
    call_command("verify_audit_chain", "--jobs", "1")
    verified = AuditEvent.objects.order_by("-id").first()
    assert (verified.action, verified.data["ok"], verified.data["events"]) == (ACTION_VERIFIED, True, 3)

    tamper("UPDATE audits_auditevent SET action = 'x' WHERE seq = 2")
    with pytest.raises(CommandError, match=r"^audit chain BROKEN at seq 2: hash does not match"):
        call_command("verify_audit_chain", "--jobs", "1")
    last = AuditEvent.objects.order_by("-id").first()
    assert (last.action, last.data["first_bad_seq"], last.data["problem"]) == (ACTION_BROKEN, 2, BAD_HASH)


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_leave_a_valid_chain():
    writers, per_writer = 4, 40
    barrier = threading.Barrier(writers)
    errors = []

    def write(n: int) -> None:
        try:
            barrier.wait(10)
            for i in range(per_writer):
                with transaction.atomic():  # one business transaction per event, as the services do
                    audit_event_record(action="tests.concurrent", subject_id=f"{n}-{i}")
        except Exception as exc:  # reported below; a thread cannot fail the test itself
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert errors == []
    assert list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True)) == list(range(1, 161))
    result = verify_chain(jobs=2, min_per_job=50)
    assert (result.ok, result.events, result.last_seq) == (True, 160, 160)


@pytest.mark.django_db(transaction=True)
def test_parallel_verification_finds_the_same_first_bad_seq():
    for i in range(120):
        audit_event_record(action="tests.parallel", subject_id=str(i))
    tamper("UPDATE audits_auditevent SET subject_id = 'x' WHERE seq = 97")

    result = verify_chain(jobs=2, min_per_job=50)

    # Both halves ran: 1..60 in full, then 61..96 before the bad event.
    assert (_outcome(result), result.events) == ((False, 97, BAD_HASH), 60 + 36)


# Values the COPY text format escapes (tab, newline, backslash, ...), and text that is not ASCII, where a length
# in characters differs from one in bytes.
AWKWARD = ("tab\there", "line\nbreak\r\n", "back\\slash \\N", "é ü 日本 🙂", "bell\x07 vt\x0b ff\x0c bs\x08", "")


def test_awkward_text_is_sealed_and_verified_the_same_way_everywhere():
    made = [
        audit_event_record(action=f"tests.awkward.{i}", actor_label=text or "x", subject_repr=text, subject_id=text,
                           trace_id=text[:64], data={"text": text, text: [text]})
        for i, text in enumerate(AWKWARD)
    ]  # fmt: skip
    audit_chain_seal()  # the database's sealer (PostgreSQL) computes the hashes ...

    for event in made:  # ... exactly as audits/chain.py does
        stored = AuditEvent.objects.get(pk=event.pk)
        assert stored.hash == event_hash(stored.chained_values())
    assert _outcome(verify_chain()) == (True, None, "")
    assert _outcome(verify_chain(jobs=2, min_per_job=2)) == (True, None, "")


@pytest.mark.parametrize("index", range(len(AWKWARD)))
def test_a_change_inside_awkward_text_is_reported_at_its_seq(index):
    for i, text in enumerate(AWKWARD):
        audit_event_record(action="tests.awkward", subject_repr=text, data={"i": i})
    audit_chain_seal()
    seq = AuditEvent.objects.get(data__contains=f'"i":{index}').seq
    tamper("UPDATE audits_auditevent SET subject_repr = subject_repr || 'x' WHERE seq = %s", [seq])

    assert _outcome(verify_chain()) == (False, seq, BAD_HASH)


def test_verifier_connection_stays_usable_after_stopping_early(events):
    events(30)
    tamper("UPDATE audits_auditevent SET actor_label = 'someone else' WHERE seq = 2")

    assert _outcome(verify_chain(jobs=1)) == (False, 2, BAD_HASH)
    assert AuditEvent.objects.filter(seq__isnull=False).count() == 30
