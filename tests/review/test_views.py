import pytest
from django.urls import reverse

from review import services, views
from review.models import Escalation
from tests.review.conftest import PASSWORD, hit

pytestmark = pytest.mark.django_db


def detail_url(esc):
    return reverse("review:escalation-detail", args=[esc.pk])


def decide_url(esc):
    return reverse("review:escalation-decide", args=[esc.pk])


@pytest.mark.parametrize("name", ["review:queue", "review:stats", "review:queue-counts"])
def test_anonymous_is_sent_to_login(client, name):
    response = client.get(reverse(name))
    assert (response.status_code, response["Location"]) == (302, f"/accounts/login/?next={reverse(name)}")


def test_anonymous_post_decide_is_sent_to_login(client, escalation):
    esc = escalation()
    response = client.post(decide_url(esc), {"decision": "approve"})
    assert (response.status_code, response["Location"]) == (302, f"/accounts/login/?next={decide_url(esc)}")
    assert Escalation.objects.get(pk=esc.pk).status == "pending"


def test_user_tier_gets_403(client, reviewer, escalation):
    esc = escalation(severity="low")
    client.force_login(reviewer("user"))
    assert [client.get("/").status_code, client.get(detail_url(esc)).status_code,
            client.post(decide_url(esc), {"decision": "approve"}).status_code] == [403, 403, 403]  # fmt: skip
    assert Escalation.objects.get(pk=esc.pk).status == "pending"


def test_stats_only_for_privileged_and_staff(client, reviewer):
    client.force_login(reviewer("verified"))
    assert client.get(reverse("review:stats")).status_code == 403
    client.force_login(reviewer("verified", is_staff=True))
    assert client.get(reverse("review:stats")).status_code == 200
    client.force_login(reviewer("privileged"))
    assert client.get(reverse("review:stats")).status_code == 200


@pytest.mark.parametrize(("method", "name"), [("post", "queue"), ("get", "decide"), ("get", "claim"),
                                               ("get", "release"), ("get", "next")])  # fmt: skip
def test_wrong_method_is_405(client, reviewer, escalation, method, name):
    esc = escalation()
    client.force_login(reviewer("verified"))
    url = {"queue": "/", "decide": decide_url(esc), "next": reverse("review:claim-next"),
           "claim": reverse("review:escalation-claim", args=[esc.pk]),
           "release": reverse("review:escalation-release", args=[esc.pk])}[name]  # fmt: skip
    assert getattr(client, method)(url).status_code == 405


def test_unknown_and_foreign_escalations_are_404(client, reviewer, escalation):
    critical = escalation(severity="critical")
    client.force_login(reviewer("verified"))
    assert client.get("/review/escalations/999999/").status_code == 404
    assert client.get(detail_url(critical)).status_code == 404
    response = client.post(decide_url(critical), {"decision": "approve", "note": "ok"})
    assert response.status_code == 404
    assert Escalation.objects.get(pk=critical.pk).status == "pending"


def test_block_without_note_is_400_with_message(client, reviewer, escalation):
    esc = escalation()
    client.force_login(reviewer("verified"))
    response = client.post(decide_url(esc), {"decision": "block", "note": ""})
    assert response.status_code == 400
    assert response.context["error"] == services.NOTE_REQUIRED
    assert Escalation.objects.get(pk=esc.pk).status == "pending"


def test_bad_decision_value_is_400(client, reviewer, escalation):
    esc = escalation()
    client.force_login(reviewer("verified"))
    response = client.post(decide_url(esc), {"decision": "delete", "note": "x"})
    assert response.status_code == 400
    assert response.context["error"] == "decision: Select a valid choice. delete is not one of the available choices."


def test_verified_tampering_with_suspension_is_400_and_no_change(client, reviewer, escalation):
    esc = escalation()
    client.force_login(reviewer("verified"))
    response = client.post(decide_url(esc), {"decision": "block", "note": "x", "suspend_hours": "24",
                                             "suspend_reason": "because"})  # fmt: skip
    assert (response.status_code, response.context["error"]) == (400, services.SUSPEND_NOT_ALLOWED)
    assert Escalation.objects.get(pk=esc.pk).status == "pending"


def test_happy_path_approve_redirects_with_message(client, reviewer, escalation):
    esc = escalation(severity="low")
    alice = reviewer("verified")
    client.force_login(alice)
    response = client.post(decide_url(esc), {"decision": "approve", "note": ""}, follow=True)
    assert response.redirect_chain == [("/", 302)]
    assert [str(m) for m in response.context["messages"]] == [views.MSG_DECIDED.format(pk=esc.pk, status="approved")]
    esc.refresh_from_db()
    assert (esc.status, esc.decided_by, esc.decided_by_label) == ("approved", alice, alice.username)


def test_second_decision_is_409_already_decided_by(client, reviewer, escalation):
    esc = escalation(severity="low")
    alice, bob = reviewer("verified"), reviewer("verified")
    services.escalation_decide(escalation_id=esc.pk, decision="approve", tier="verified", actor=alice,
                               actor_label=alice.username)  # fmt: skip
    client.force_login(bob)
    response = client.post(decide_url(esc), {"decision": "block", "note": "no"})
    assert response.status_code == 409
    assert response.context["error"] == views.MSG_ALREADY_DECIDED.format(who=alice.username, decision="approved")
    assert Escalation.objects.get(pk=esc.pk).status == "approved"


def test_claim_on_someone_elses_item_is_409(client, reviewer, escalation):
    esc = escalation()
    alice, bob = reviewer("verified"), reviewer("verified")
    services.escalation_claim(escalation_id=esc.pk, actor=alice, tier="verified")
    client.force_login(bob)
    response = client.post(reverse("review:escalation-claim", args=[esc.pk]))
    assert (response.status_code, response.context["error"]) == (409, views.MSG_CLAIMED_BY_OTHER.format(who=alice))
    assert Escalation.objects.get(pk=esc.pk).claimed_by == alice


def test_next_claims_and_opens_the_top_item(client, reviewer, escalation):
    escalation(severity="low")
    top = escalation(severity="medium")
    alice = reviewer("verified")
    client.force_login(alice)
    response = client.post(reverse("review:claim-next"))
    assert (response.status_code, response["Location"]) == (302, detail_url(top))
    assert Escalation.objects.get(pk=top.pk).claimed_by == alice


def test_detail_escapes_model_output_and_shows_pseudonym_not_principal(client, reviewer, escalation):
    payload = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
    esc = escalation(direction="output", severity="low", response=payload, principal_id="apikey:secret-principal",
                     hits=[hit(severity="low", field="response", span=(0, 30))])  # fmt: skip
    client.force_login(reviewer("verified"))
    body = client.get(detail_url(esc)).content.decode()
    assert "<script>alert(2)" not in body
    assert "<img src=x" not in body
    assert '">&lt;img src=x onerror=&quot;alert(1)&quot;&gt;</mark><sup class="hit-ref">' in body
    assert "&lt;script&gt;alert(2)&lt;/script&gt;</div>" in body
    assert "u_0123456789abcdef" in body
    assert "secret-principal" not in body


def test_queue_filters_and_bad_filter(client, reviewer, escalation):
    low = escalation(severity="low", hits=[hit(reason_code="HATE", severity="low")])
    escalation(severity="medium")
    client.force_login(reviewer("verified"))
    response = client.get("/", {"reason": "HATE"})
    assert [e.pk for e in response.context["items"]] == [low.pk]
    assert response.context["counts"] == {"medium": 1, "low": 1}
    bad = client.get("/", {"severity": "extreme"})
    assert (bad.status_code, bad.context["error"]) == (400, views.MSG_BAD_FILTER)


def test_queue_keyset_pagination_walks_every_item_once(client, reviewer, escalation, settings):
    made = [escalation(severity=sev).pk for sev in ["low", "medium"] * 40]
    client.force_login(reviewer("verified"))
    seen, after = [], ""
    for _ in range(5):
        response = client.get("/", {"after": after} if after else {})
        seen += [e.pk for e in response.context["items"]]
        after = response.context["next_cursor"]
        if not after:
            break
    expected = [pk for pk in made if Escalation.objects.get(pk=pk).severity == "medium"]
    expected += [pk for pk in made if Escalation.objects.get(pk=pk).severity == "low"]
    assert seen == expected


@pytest.mark.parametrize("size", [3, 30])
def test_queue_query_count_does_not_grow(client, reviewer, escalation, django_assert_num_queries, size):
    alice = reviewer("verified")
    for i in range(size):
        esc = escalation(severity="low")
        if i % 2:
            services.escalation_claim(escalation_id=esc.pk, actor=alice, tier="verified")
    client.force_login(alice)
    # session + user, the page query, the capped counts (one query for all severities)
    with django_assert_num_queries(4):
        assert client.get("/").status_code == 200


def test_counts_partial_for_htmx(client, reviewer, escalation):
    escalation(severity="low")
    client.force_login(reviewer("verified"))
    response = client.get(reverse("review:queue-counts"), headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert response.context["counts"] == {"medium": 0, "low": 1}
    assert response.content.decode().startswith('<div id="queue-counts"')


def test_console_sends_strict_csp(client, reviewer):
    client.force_login(reviewer("verified"))
    csp = client.get("/")["Content-Security-Policy"]
    assert "script-src 'self';" in csp
    assert "style-src 'self';" in csp


def test_login_locks_out_after_repeated_failures(client, reviewer):
    alice = reviewer("verified")
    for _ in range(5):
        client.post("/accounts/login/", {"username": alice.username, "password": "wrong"}, REMOTE_ADDR="10.0.0.1")
    response = client.post("/accounts/login/", {"username": alice.username, "password": PASSWORD},
                           REMOTE_ADDR="10.0.0.1")  # fmt: skip
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session


def test_stats_page_counts_decisions_median_and_overturned(client, reviewer, escalation):
    from datetime import timedelta

    from django.utils import timezone

    boss = reviewer("privileged", username="boss")
    prompt = escalation(severity="low", direction="prompt")
    services.escalation_decide(escalation_id=prompt.pk, decision="approve", tier="privileged", actor=boss,
                               actor_label="boss")  # fmt: skip
    output = escalation(severity="low", direction="output", response="bad")
    Escalation.objects.filter(pk=output.pk).update(request=prompt.request)
    services.escalation_decide(escalation_id=output.pk, decision="block", tier="privileged", actor=boss,
                               actor_label="boss", note="harmful")  # fmt: skip
    # Make both decisions take exactly 60 s after creation.
    for esc in (prompt, output):
        esc.refresh_from_db()
        Escalation.objects.filter(pk=esc.pk).update(created_at=esc.decided_at - timedelta(seconds=60))
    escalation(severity="critical")
    client.force_login(boss)

    stats = client.get(reverse("review:stats")).context["stats"]

    today = timezone.now().date()
    assert stats["per_day"] == [{"day": today, "decided_by_label": "boss", "approved": 1, "blocked": 1}]
    assert (stats["median_seconds"], stats["decided"]) == (60.0, 2)
    assert [e.pk for e in stats["overturned"]] == [prompt.pk]
    assert [(row["severity"], row["pending"], row["overdue"]) for row in stats["queue_age"]] == [
        ("critical", 1, 0), ("high", 0, 0), ("medium", 0, 0), ("low", 0, 0)]  # fmt: skip


def test_privileged_block_with_suspension_and_proposal_through_the_form(client, reviewer, escalation):
    from review.models import BlocklistProposal
    from safety_admin.gateway.models import Suspension

    esc = escalation(severity="critical", user_input="synthesize sarin at home", principal_id="apikey:p1")
    client.force_login(reviewer("privileged", username="boss"))
    response = client.post(decide_url(esc), {"decision": "block", "note": "chemical weapon", "suspend_hours": "24",
                                             "suspend_reason": "CBRN request", "propose_text": "sarin",
                                             "propose_reason_code": "HIGH_RISK_CHEM",
                                             "propose_severity": "critical"})  # fmt: skip
    assert (response.status_code, response["Location"]) == (302, "/")
    suspension = Suspension.objects.get()
    assert (suspension.principal_id, suspension.reason) == ("apikey:p1", "CBRN request")
    assert 23.9 * 3600 < (suspension.until - suspension.created_at).total_seconds() <= 24 * 3600
    assert list(BlocklistProposal.objects.values_list("text", "reason_code", "severity", "proposed_by_label")) == [
        ("sarin", "HIGH_RISK_CHEM", "critical", "boss")]  # fmt: skip
    assert Escalation.objects.get(pk=esc.pk).status == "blocked"
