"""A queued or refused request and its audit event reach PostgreSQL as one statement, all or nothing."""

from types import SimpleNamespace

import pytest
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audits.models import AuditEvent
from review.models import Escalation
from safety_admin.db import Row, _numbered, insert_then, insert_together
from safety_admin.detectors.types import Hit, Verdict
from safety_admin.inference.models import InferenceRequest
from safety_admin.inference.services import inference_request_create
from safety_admin.notifications.models import Notification

pytestmark = pytest.mark.django_db

PRINCIPAL = SimpleNamespace(principal_id="apikey:one", pseudonym="p-one", tier="user", profile="")


def create(verdict: Verdict, text: str = "How do tides work?"):
    return inference_request_create(principal=PRINCIPAL, user_input=text, system_prompt="", model_name="m",
                                     metadata={"k": "v"}, verdict=verdict, hits=[], trace_id="t-1")  # fmt: skip


def test_a_queued_request_and_its_event_are_one_statement():
    with CaptureQueriesContext(connection) as queries:
        req, event = create(Verdict(action="pass", hits=()))

    assert len(queries.captured_queries) == 1
    stored = InferenceRequest.objects.get(pk=req.pk)
    assert (stored.status, stored.user_input, stored.metadata, stored.trace_id) == (
        "pending", "How do tides work?", {"k": "v"}, "t-1")  # fmt: skip
    assert stored.created_at is not None
    assert stored.updated_at is not None
    saved = AuditEvent.objects.get(pk=event.pk)
    assert (saved.action, saved.subject_id) == ("gateway.request.accepted", str(req.pk))
    assert saved.ticket_id == event.ticket_id


def test_a_refused_request_and_its_event_are_one_statement():
    hit = Hit(rule_id="r", reason_code="HIGH_RISK_WEAPON", severity="critical", action="refuse", start=0, end=3)
    with CaptureQueriesContext(connection) as queries:
        req, event = create(Verdict(action="refuse", hits=(hit,)))

    assert len(queries.captured_queries) == 1
    assert InferenceRequest.objects.get(pk=req.pk).status == "refused"
    assert AuditEvent.objects.get(ticket_id=event.ticket_id).data["reason_code"] == "HIGH_RISK_WEAPON"


def test_a_failing_second_insert_leaves_no_first_row():
    req = InferenceRequest(principal_id="x", principal_pseudonym="p", principal_tier="user", user_input="hi")

    with pytest.raises(DatabaseError), transaction.atomic():
        insert_then([Row(req)], "INSERT INTO audits_auditevent (ticket_id) VALUES (NULL) RETURNING id", [])

    assert not InferenceRequest.objects.filter(pk=req.pk).exists()


def test_rows_can_point_at_earlier_rows_in_the_same_statement():
    req = InferenceRequest(principal_id="x", principal_pseudonym="p", principal_tier="user", user_input="hi")
    req.save()
    escalation = Escalation(request=req, direction="prompt", severity="high", due_at=req.created_at)
    outbox = [Notification(escalation=escalation, channel=c, kind="created", next_attempt_at=req.created_at)
              for c in ("slack", "pagerduty")]  # fmt: skip

    with CaptureQueriesContext(connection) as queries:
        insert_together([Row(escalation), *(Row(n, refs={"escalation": 0}) for n in outbox)])

    assert len(queries.captured_queries) == 1
    assert escalation.pk is not None
    assert sorted(Notification.objects.filter(escalation_id=escalation.pk).values_list("id", "channel")) == sorted(
        (n.pk, n.channel) for n in outbox)  # fmt: skip
    assert all(n.escalation_id == escalation.pk for n in outbox)


def test_a_row_may_not_point_forward():
    req = InferenceRequest(principal_id="x", principal_pseudonym="p", principal_tier="user", user_input="hi")
    with pytest.raises(ValueError, match="earlier row"):
        insert_together([Row(req, refs={"principal_id": 0})])


def test_placeholders_are_numbered_once_and_a_stray_percent_keeps_psycopg_converting():
    assert _numbered("INSERT INTO t (a, b) VALUES (%s, %s) RETURNING id") == (
        "INSERT INTO t (a, b) VALUES ($1, $2) RETURNING id")  # fmt: skip
    assert _numbered("SELECT 1") == "SELECT 1"
    assert _numbered("SELECT %s WHERE x LIKE 'a%%'") is None


def test_a_request_its_escalation_and_outbox_rows_go_numbered_with_more_than_fifty_parameters():
    """psycopg caches its own conversion only up to 50 parameters; this statement has more, and is sent as
    PostgreSQL's $n placeholders instead, with every value where it belongs."""
    req = InferenceRequest(principal_id="x", principal_pseudonym="p", principal_tier="user", user_input="hi %s %%")
    escalation = Escalation(request=req, direction="prompt", severity="high", due_at=timezone.now())
    outbox = [Notification(escalation=escalation, channel=c, kind="created", next_attempt_at=timezone.now())
              for c in ("slack", "pagerduty")]  # fmt: skip
    rows = [Row(req), Row(escalation, refs={"request": 0}), *(Row(n, refs={"escalation": 1}) for n in outbox)]

    with CaptureQueriesContext(connection) as queries:
        insert_together(rows)

    (query,) = queries.captured_queries
    assert "$51" in query["sql"]
    assert "%s" not in query["sql"]
    assert InferenceRequest.objects.get(pk=req.pk).user_input == "hi %s %%"
    assert Escalation.objects.get(pk=escalation.pk).request_id == req.pk
    assert sorted(Notification.objects.filter(escalation_id=escalation.pk).values_list("channel", flat=True)) == [
        "pagerduty", "slack"]  # fmt: skip
