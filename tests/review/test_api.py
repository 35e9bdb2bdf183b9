"""POST /safety/review goes through the same escalation_decide as the console (API parity)."""

import pytest

from audits.models import AuditEvent
from review import services
from review.models import Escalation

pytestmark = pytest.mark.django_db


def review(client, key, body):
    return client.post("/safety/review", data=body, content_type="application/json", headers={"X-API-Key": key})


def test_api_decision_is_attributed_to_the_caller_and_second_is_409(client, api_key, escalation, reviewer):
    esc = escalation(severity="medium")
    key = api_key(tier="verified", name="ops bot")

    first = review(client, key, {"request_id": str(esc.request_id), "decision": "block", "reviewer_id": "mallory",
                                 "notes": "weapons"})  # fmt: skip
    second = review(client, key, {"request_id": str(esc.request_id), "decision": "approve", "reviewer_id": "x",
                                  "notes": "ok"})  # fmt: skip

    assert (first.status_code, first.json()) == (200, {"request_id": str(esc.request_id), "decision": "block",
                                                       "status": "blocked"})  # fmt: skip
    assert (second.status_code, second.json()["error"]) == (409, "ALREADY_DECIDED")
    esc.refresh_from_db()
    assert (esc.status, esc.decided_by_label, esc.reviewer_ref, esc.decided_by) == (
        "blocked", "api key ops bot", "mallory", None)  # fmt: skip
    event = AuditEvent.objects.get(action="review.escalation.blocked")
    assert (event.actor_label, event.data["reviewer_ref"]) == ("api key ops bot", "mallory")


def test_api_tier_rules_match_the_console(client, api_key, escalation):
    esc = escalation(severity="high")
    response = review(client, api_key(tier="verified"), {"request_id": str(esc.request_id), "decision": "approve",
                                                         "reviewer_id": "r", "notes": "n"})  # fmt: skip
    assert (response.status_code, response.json()["error"]) == (403, "FORBIDDEN")
    assert Escalation.objects.get(pk=esc.pk).status == "pending"


def test_api_decision_ignores_console_claims_but_console_sees_result(client, api_key, escalation, reviewer):
    esc = escalation(severity="low")
    alice = reviewer("verified")
    services.escalation_claim(escalation_id=esc.pk, actor=alice, tier="verified")
    response = review(client, api_key(tier="privileged"), {"request_id": str(esc.request_id), "decision": "approve",
                                                           "reviewer_id": "r", "notes": ""})  # fmt: skip
    assert response.status_code == 200
    with pytest.raises(services.AlreadyDecided):
        services.escalation_decide(escalation_id=esc.pk, decision="block", tier="verified", actor=alice,
                                   actor_label=alice.username, note="late")  # fmt: skip
