"""The sealer modes: a thread per writing process (AUDIT_SEALER=thread), and a worker chaining for everyone."""

import pytest
from django.db import connection, transaction

from audits import sealer
from audits.models import AuditEvent
from audits.services import audit_event_record
from audits.verify import verify_chain
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _sealer_lets_go_of_the_database():
    yield
    assert sealer.release_connection()


def test_background_sealer_chains_committed_events(settings):
    settings.AUDIT_SEALER = "thread"
    with transaction.atomic():
        events = [
            audit_event_record(action="tests.sealer.recorded", actor_label="tests", data={"n": n}) for n in range(5)
        ]
    wait_for(lambda: sealer.wait_idle(0.1) and all(AuditEvent.objects.get(pk=e.pk).seq for e in events), timeout=10,
             message="the background sealer to chain the events")  # fmt: skip
    seqs = [AuditEvent.objects.get(pk=e.pk).seq for e in events]
    assert seqs == list(range(seqs[0], seqs[0] + 5))
    assert verify_chain().ok is True


def test_rolled_back_events_are_never_chained(settings):
    settings.AUDIT_SEALER = "thread"

    def record_then_fail():
        with transaction.atomic():
            audit_event_record(action="tests.sealer.rolled_back", actor_label="tests")
            raise RuntimeError("roll back")

    with pytest.raises(RuntimeError):
        record_then_fail()
    assert sealer.wait_idle(5)
    assert AuditEvent.objects.filter(action="tests.sealer.rolled_back").count() == 0


def test_background_sealer_recovers_when_its_connection_dies(settings):
    settings.AUDIT_SEALER = "thread"

    def sealed(event) -> bool:
        return sealer.wait_idle(0.1) and AuditEvent.objects.get(pk=event.pk).seq is not None

    with transaction.atomic():
        before = audit_event_record(action="tests.sealer.before", actor_label="tests")
    wait_for(lambda: sealed(before), timeout=10, message="the first event to be chained")
    with connection.cursor() as cursor:  # e.g. a database restart: the sealer thread's connection is gone
        cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                       " WHERE datname = current_database() AND pid <> pg_backend_pid()")  # fmt: skip

    with transaction.atomic():
        after = audit_event_record(action="tests.sealer.after", actor_label="tests")

    wait_for(lambda: sealed(after), timeout=10, message="the sealer to reconnect and chain the next event")
    assert verify_chain().ok is True


def test_with_workers_sealing_a_web_process_leaves_the_chain_to_a_worker(settings, start_worker):
    settings.AUDIT_SEALER = "workers"
    with transaction.atomic():
        event = audit_event_record(action="tests.sealer.for_the_worker", actor_label="tests")
    assert sealer.wait_idle(1)
    assert AuditEvent.objects.get(pk=event.pk).seq is None  # the writer spent nothing on the chain

    worker = start_worker(queues=("default",), AUDIT_SEALER="workers", AUDIT_SEAL_SECONDS="0.2")
    wait_for(lambda: AuditEvent.objects.get(pk=event.pk).seq is not None, timeout=30,
             message=f"a worker to chain the event; log:\n{worker.output()}")  # fmt: skip
    assert verify_chain().ok is True
