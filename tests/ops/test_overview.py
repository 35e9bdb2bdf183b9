"""The staff overview page: access, the numbers behind each chart, no inline script or style, query count."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audits.services import audit_event_record
from review.models import Escalation
from review.services import escalation_create
from safety_admin.inference.models import InferenceRequest
from safety_admin.overview.views import STAFF_ONLY

pytestmark = pytest.mark.django_db
URL = "/ops/overview/"


@pytest.fixture
def staff(client):
    user = get_user_model().objects.create_user("ops-lead", password=None, is_staff=True)
    client.force_login(user)
    return user


def escalation(severity: str, code: str, *, age: timedelta, sla: timedelta) -> Escalation:
    req = InferenceRequest.objects.create(principal_id="apikey:0000aaaa", principal_pseudonym="u_1",
                                          principal_tier="user", user_input="x", status="in_review")  # fmt: skip
    esc = escalation_create(request=req, direction="prompt", severity=severity,
                            hits=[{"rule_id": "t", "reason_code": code, "severity": severity}])  # fmt: skip
    created = timezone.now() - age
    Escalation.objects.filter(pk=esc.pk).update(created_at=created, due_at=created + sla)
    return esc


def refusal(code: str, *, status: str = "refused") -> InferenceRequest:
    return InferenceRequest.objects.create(principal_id="apikey:0000aaaa", principal_pseudonym="u_1",
                                           principal_tier="user", user_input="x", status=status,
                                           reason_codes=[code, "OBFUSCATION"])  # fmt: skip


def decision(action: str) -> None:
    audit_event_record(action=action, actor_label="reviewer", subject_type="review.escalation", subject_id="1")


def test_anonymous_is_sent_to_sign_in(client):
    response = client.get(URL)
    assert (response.status_code, response["Location"]) == (302, f"/accounts/login/?next={URL}")


def test_non_staff_gets_403(client):
    client.force_login(get_user_model().objects.create_user("reviewer", password=None, tier="privileged"))
    response = client.get(URL)
    assert response.status_code == 403
    assert STAFF_ONLY == "The overview is for staff."


def test_post_is_not_allowed(client, staff):
    assert client.post(URL).status_code == 405


def test_charts_show_refusals_escalations_queues_and_sla(client, staff, redis_client):
    for code in ("HIGH_RISK_EXPLOSIVE", "HIGH_RISK_EXPLOSIVE", "HATE"):
        refusal(code)
    refusal("SECRET_LEAK", status="blocked")
    refusal("HATE", status="completed")  # answered: not a refusal
    for action in ("review.escalation.approved", "review.escalation.approved", "review.escalation.blocked"):
        decision(action)
    escalation("critical", "HIGH_RISK_BIO", age=timedelta(minutes=40), sla=timedelta(minutes=15))
    escalation("high", "SECRET_LEAK", age=timedelta(minutes=5), sla=timedelta(minutes=60))
    met = escalation("medium", "HATE", age=timedelta(hours=2), sla=timedelta(hours=4))
    late = escalation("medium", "HATE", age=timedelta(hours=9), sla=timedelta(hours=4))
    Escalation.objects.filter(pk=met.pk).update(status="approved", decided_at=timezone.now() - timedelta(hours=1))
    Escalation.objects.filter(pk=late.pk).update(status="blocked", decided_at=timezone.now() - timedelta(hours=1))
    redis_client.rpush("rq:queue:inference", "a", "b", "c", "d")

    response = client.get(URL)

    assert response.status_code == 200
    ctx = response.context
    assert ctx["window"].key == "24h"
    assert ctx["refusals"].legend == [("series-0", "HIGH_RISK_EXPLOSIVE", 2), ("series-1", "HATE", 1),
                                      ("series-2", "SECRET_LEAK", 1)]  # fmt: skip
    assert ctx["escalations"].legend == [("series-0", "HATE", 2), ("series-1", "HIGH_RISK_BIO", 1),
                                         ("series-2", "SECRET_LEAK", 1)]  # fmt: skip
    assert ctx["decisions"].legend == [("series-2", "approved", 2), ("series-5", "blocked", 1)]
    assert [(b.label, b.value, b.width) for b in ctx["queues"]] == [
        ("inference", 4, 300.0),
        ("notifications", 0, 0.0),
        ("default", 0, 0.0),
    ]
    sla = [(r.severity, r.pending, r.overdue, r.decided, r.decided_in_sla, r.in_sla_percent) for r in ctx["sla"]]
    assert sla == [
        ("critical", 1, 1, 0, 0, None),
        ("high", 1, 0, 0, 0, None),
        ("medium", 0, 0, 2, 1, 50),
        ("low", 0, 0, 0, 0, None),
    ]
    assert [r.oldest_pending_text for r in ctx["sla"]] == ["40 min", "5 min", "\N{EN DASH}", "\N{EN DASH}"]
    html = response.content.decode()
    assert len(re.findall(r'<rect class="series-\d" x=', html)) == sum(
        len(ctx[name].rects) for name in ("refusals", "escalations", "decisions")
    )
    # The bar tooltips add up to every refusal, escalation and decision.
    assert sum(int(t.split(": ")[1].split()[0]) for t in re.findall(r"<title>([^<]+)</title></rect>", html)) == 11


def test_page_has_no_inline_script_or_style(client, staff):
    refusal("HATE")
    html = client.get(URL).content.decode()
    assert re.findall(r"<script(?![^>]*\bsrc=)", html) == []
    assert re.findall(r"\sstyle=|<style", html) == []
    assert re.findall(r"\son[a-z]+=", html) == []
    assert '<link rel="stylesheet" href="/static/overview/overview.css">' in html


def test_window_choice_sets_the_buckets(client, staff):
    week = client.get(URL, {"window": "7d"}).context
    month = client.get(URL, {"window": "30d"}).context
    unknown = client.get(URL, {"window": "1y"}).context

    assert (week["window"].key, len(week["refusals"].x_ticks), week["refusals"].table_rows) == ("7d", 7, [])
    assert month["window"].key == "30d"
    assert unknown["window"].key == "24h"


def test_redis_down_shows_unknown_queue_depth(client, staff, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = client.get(URL)
    assert [b.value for b in response.context["queues"]] == [None, None, None]
    assert "Redis is not answering: queue depth unknown." in response.content.decode()


def test_query_count_does_not_grow_with_the_data(client, staff):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(URL).status_code == 200
        return len(captured)

    refusal("HATE")
    escalation("low", "HATE", age=timedelta(minutes=1), sla=timedelta(hours=24))
    small = queries()
    for i in range(12):
        refusal(f"CODE_{i}")
        decision("review.escalation.blocked")
        escalation(
            ("low", "medium", "high", "critical")[i % 4], f"CODE_{i}", age=timedelta(hours=i), sla=timedelta(hours=1)
        )
    large = queries()

    assert small == large
