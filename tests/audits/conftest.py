"""Helpers for audit tests: tampering with the table the way someone with database access would."""

import pytest
from django.core.cache import cache
from django.db import connection

import audits.services
from audits.models import AuditEvent
from audits.services import audit_chain_seal, audit_event_record


@pytest.fixture(autouse=True)
def _fresh_process_state(monkeypatch):
    """Each test starts as a fresh process would: no recent checkpoint seen, no cached admin filter choices."""
    monkeypatch.setattr(audits.services, "_last_checkpoint_seen", None)
    cache.clear()


def tamper(sql: str, params=None) -> None:
    """Run ``sql`` against the audit tables with the append-only triggers switched off (as a DB owner could)."""
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audits_auditevent DISABLE TRIGGER USER")
        cursor.execute("ALTER TABLE audits_auditcheckpoint DISABLE TRIGGER USER")
        cursor.execute(sql, params)
        cursor.execute("ALTER TABLE audits_auditevent ENABLE TRIGGER USER")
        cursor.execute("ALTER TABLE audits_auditcheckpoint ENABLE TRIGGER USER")


@pytest.fixture
def events(db):
    """A factory: ``events(n)`` records n events, chains them (as the on-commit hook would) and returns them."""

    def make(n: int, **fields):
        made = [
            audit_event_record(action="tests.thing.done", actor_label="tester", subject_type="tests.thing",
                               subject_id=str(i), data={"i": i, "note": "é\x00", "x": 1.5}, **fields)
            for i in range(n)
        ]  # fmt: skip
        audit_chain_seal()
        return [AuditEvent.objects.get(pk=e.pk) for e in made]

    return make
