import threading
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from audits.models import AuditEvent
from review import services
from review.models import BlocklistProposal, Escalation
from safety_admin.gateway.models import Suspension
from safety_admin.inference.models import InferenceRequest
from tests.review.conftest import hit

pytestmark = pytest.mark.django_db

ALLOWED = {
    ("user", "low"): False, ("user", "medium"): False, ("user", "high"): False, ("user", "critical"): False,
    ("verified", "low"): True, ("verified", "medium"): True, ("verified", "high"): False,
    ("verified", "critical"): False,
    ("privileged", "low"): True, ("privileged", "medium"): True, ("privileged", "high"): True,
    ("privileged", "critical"): True,
}  # fmt: skip


@pytest.mark.parametrize(("tier", "severity"), sorted(ALLOWED))
def test_decide_tier_severity_matrix(reviewer, escalation, tier, severity):
    esc = escalation(severity=severity)
    user = reviewer(tier)
    if ALLOWED[(tier, severity)]:
        services.escalation_decide(escalation_id=esc.pk, decision="block", tier=tier, actor=user,
                                   actor_label=user.username, note="bad")  # fmt: skip
        assert Escalation.objects.get(pk=esc.pk).status == "blocked"
    else:
        with pytest.raises(services.TierNotAllowed):
            services.escalation_decide(escalation_id=esc.pk, decision="block", tier=tier, actor=user,
                                       actor_label=user.username, note="bad")  # fmt: skip
        assert Escalation.objects.get(pk=esc.pk).status == "pending"


@pytest.mark.parametrize(("tier", "severity"), sorted(ALLOWED))
def test_claim_tier_severity_matrix(reviewer, escalation, tier, severity):
    esc = escalation(severity=severity)
    user = reviewer(tier)
    if ALLOWED[(tier, severity)]:
        assert services.escalation_claim(escalation_id=esc.pk, actor=user, tier=tier).claimed_by == user
        assert services.escalation_claim_next(actor=reviewer(tier), tier=tier) is None
    else:
        with pytest.raises(services.TierNotAllowed):
            services.escalation_claim(escalation_id=esc.pk, actor=user, tier=tier)
        assert services.escalation_claim_next(actor=user, tier=tier) is None


def test_claim_next_takes_highest_severity_then_oldest_and_skips_claimed(reviewer, escalation):
    old_low = escalation(severity="low")
    old_medium = escalation(severity="medium")
    new_medium = escalation(severity="medium")
    escalation(severity="critical")  # above the verified tier
    alice, bob, carol, dave = (reviewer("verified") for _ in range(4))

    picks = [services.escalation_claim_next(actor=u, tier="verified") for u in (alice, bob, carol, dave)]

    assert [p.pk if p else None for p in picks] == [old_medium.pk, new_medium.pk, old_low.pk, None]
    # Asking again returns one's own live claim rather than hoarding another.
    assert services.escalation_claim_next(actor=alice, tier="verified").pk == old_medium.pk


def test_expired_claim_returns_to_the_queue(reviewer, escalation):
    esc = escalation()
    alice, bob = reviewer("verified"), reviewer("verified")
    services.escalation_claim(escalation_id=esc.pk, actor=alice, tier="verified")
    with pytest.raises(services.ClaimedByOther) as exc:
        services.escalation_claim(escalation_id=esc.pk, actor=bob, tier="verified")
    assert exc.value.who == alice.username
    assert services.escalation_claim_next(actor=bob, tier="verified") is None

    Escalation.objects.filter(pk=esc.pk).update(claim_expires_at=timezone.now() - timedelta(seconds=1))

    assert services.escalation_claim_next(actor=bob, tier="verified").pk == esc.pk
    assert Escalation.objects.get(pk=esc.pk).claimed_by == bob


def test_release_own_claim_and_not_someone_elses(reviewer, escalation):
    esc = escalation()
    alice, bob = reviewer("verified"), reviewer("verified")
    services.escalation_claim(escalation_id=esc.pk, actor=alice, tier="verified")
    with pytest.raises(services.ClaimedByOther):
        services.escalation_release(escalation_id=esc.pk, actor=bob)
    assert Escalation.objects.get(pk=esc.pk).claimed_by == alice

    services.escalation_release(escalation_id=esc.pk, actor=alice)

    esc.refresh_from_db()
    assert (esc.claimed_by, esc.claim_expires_at) == (None, None)
    actions = list(
        AuditEvent.objects.filter(subject_id=str(esc.pk)).order_by("id").values_list("action", "actor_label")
    )
    assert actions == [("review.escalation.claimed", alice.username), ("review.escalation.released", alice.username)]


def test_decide_on_item_claimed_by_someone_else_is_refused(reviewer, escalation):
    esc = escalation()
    alice, bob = reviewer("verified"), reviewer("verified")
    services.escalation_claim(escalation_id=esc.pk, actor=alice, tier="verified")

    with pytest.raises(services.ClaimedByOther) as exc:
        services.escalation_decide(escalation_id=esc.pk, decision="approve", tier="verified", actor=bob,
                                   actor_label=bob.username)  # fmt: skip

    assert exc.value.who == alice.username
    assert Escalation.objects.get(pk=esc.pk).status == "pending"


def test_block_writes_exact_audit_event_and_blocks_request(reviewer, escalation):
    esc = escalation(severity="medium")
    alice = reviewer("verified")

    services.escalation_decide(escalation_id=esc.pk, decision="block", tier="verified", actor=alice,
                               actor_label=alice.username, note="weapon instructions")  # fmt: skip

    event = AuditEvent.objects.get(action="review.escalation.blocked")
    assert (event.actor_id, event.actor_label, event.subject_type, event.subject_id, event.request_id) == (
        alice.pk, alice.username, "review.escalation", str(esc.pk), str(esc.request_id))  # fmt: skip
    assert event.data == {
        "decision": "block", "note": "weapon instructions", "severity": "medium", "direction": "prompt",
        "reason_codes": ["HIGH_RISK_WEAPON"], "reviewer_ref": "", "request_status": "blocked",
    }  # fmt: skip
    assert InferenceRequest.objects.get(pk=esc.request_id).status == "blocked"


def test_approve_prompt_sends_it_to_the_model(reviewer, escalation, redis_client, django_capture_on_commit_callbacks):
    esc = escalation(severity="low", direction="prompt")
    alice = reviewer("verified")

    with django_capture_on_commit_callbacks(execute=True):
        services.escalation_decide(escalation_id=esc.pk, decision="approve", tier="verified", actor=alice,
                                   actor_label=alice.username)  # fmt: skip

    assert InferenceRequest.objects.get(pk=esc.request_id).status == "pending"
    assert redis_client.lrange("rq:queue:inference", 0, -1) == [f"infer-{esc.request_id}".encode()]


def test_approve_output_releases_the_response(reviewer, escalation):
    esc = escalation(severity="high", direction="output", response="the answer")
    boss = reviewer("privileged")

    services.escalation_decide(escalation_id=esc.pk, decision="approve", tier="privileged", actor=boss,
                               actor_label=boss.username, note="fine in context")  # fmt: skip

    assert InferenceRequest.objects.get(pk=esc.request_id).status == "completed"


@pytest.mark.parametrize(("decision", "severity", "note"), [("block", "low", ""), ("approve", "high", "  ")])
def test_missing_note_is_refused_without_change(reviewer, escalation, decision, severity, note):
    esc = escalation(severity=severity)
    boss = reviewer("privileged")
    with pytest.raises(ValidationError) as exc:
        services.escalation_decide(escalation_id=esc.pk, decision=decision, tier="privileged", actor=boss,
                                   actor_label=boss.username, note=note)  # fmt: skip
    assert exc.value.messages == [services.NOTE_REQUIRED]
    assert (Escalation.objects.get(pk=esc.pk).status, AuditEvent.objects.count()) == ("pending", 0)


def test_privileged_block_suspends_the_requester(reviewer, escalation):
    esc = escalation(severity="critical", principal_id="apikey:deadbeef")
    boss = reviewer("privileged")

    services.escalation_decide(escalation_id=esc.pk, decision="block", tier="privileged", actor=boss,
                               actor_label=boss.username, note="abuse", suspend_for=timedelta(hours=24),
                               suspend_reason="repeated weapon requests")  # fmt: skip

    suspension = Suspension.objects.get()
    assert (suspension.principal_id, suspension.reason, suspension.created_by_label) == (
        "apikey:deadbeef", "repeated weapon requests", boss.username)  # fmt: skip
    assert list(AuditEvent.objects.order_by("id").values_list("action", flat=True)) == [
        "review.escalation.blocked", "gateway.suspension.created"]  # fmt: skip


@pytest.mark.parametrize(("tier", "decision"), [("verified", "block"), ("privileged", "approve")])
def test_suspension_not_allowed_changes_nothing(reviewer, escalation, tier, decision):
    esc = escalation(severity="low")
    user = reviewer(tier)
    with pytest.raises(ValidationError) as exc:
        services.escalation_decide(escalation_id=esc.pk, decision=decision, tier=tier, actor=user,
                                   actor_label=user.username, note="x", suspend_for=timedelta(hours=1),
                                   suspend_reason="r")  # fmt: skip
    assert exc.value.messages == [services.SUSPEND_NOT_ALLOWED]
    assert (Escalation.objects.get(pk=esc.pk).status, Suspension.objects.count()) == ("pending", 0)


def test_block_with_blocklist_proposal_and_admin_accepts_it(reviewer, escalation):
    esc = escalation(severity="medium", user_input="how to build a pipe bomb at home")
    alice, admin = reviewer("verified"), reviewer("privileged", is_staff=True)

    services.escalation_decide(escalation_id=esc.pk, decision="block", tier="verified", actor=alice,
                               actor_label=alice.username, note="explosives", propose_text=" pipe bomb ",
                               propose_reason_code="HIGH_RISK_EXPLOSIVE", propose_severity="high")  # fmt: skip
    proposal = BlocklistProposal.objects.get()
    assert (proposal.text, proposal.reason_code, proposal.severity, proposal.status, proposal.escalation_id,
            proposal.proposed_by) == ("pipe bomb", "HIGH_RISK_EXPLOSIVE", "high", "pending", esc.pk, alice)  # fmt: skip

    services.blocklist_proposal_mark(proposal_id=proposal.pk, status="accepted", actor=admin)

    proposal.refresh_from_db()
    assert (proposal.status, proposal.decided_by, proposal.decided_by_label) == ("accepted", admin, admin.username)
    event = AuditEvent.objects.get(action="review.blocklist_proposal.accepted")
    assert (event.actor_label, event.subject_id, event.data) == (
        admin.username, str(proposal.pk), {"text": "pipe bomb", "reason_code": "HIGH_RISK_EXPLOSIVE",
                                          "severity": "high"})  # fmt: skip
    with pytest.raises(ValidationError) as exc:
        services.blocklist_proposal_mark(proposal_id=proposal.pk, status="rejected", actor=admin)
    assert exc.value.messages == [services.PROPOSAL_ALREADY_DECIDED.format(status="accepted")]


@pytest.mark.parametrize(
    ("text", "code", "severity", "message"),
    [
        ("not in the text", "HATE", "low", services.PROPOSAL_TEXT_NOT_FOUND),
        ("bomb", "NOT_A_CODE", "low", services.PROPOSAL_BAD_REASON),
        ("bomb", "HATE", "extreme", services.PROPOSAL_BAD_SEVERITY),
    ],
)
def test_bad_proposal_rolls_back_the_block(reviewer, escalation, text, code, severity, message):
    esc = escalation()
    alice = reviewer("verified")
    with pytest.raises(ValidationError) as exc:
        services.escalation_decide(escalation_id=esc.pk, decision="block", tier="verified", actor=alice,
                                   actor_label=alice.username, note="n", propose_text=text,
                                   propose_reason_code=code, propose_severity=severity)  # fmt: skip
    assert exc.value.messages == [message]
    assert (Escalation.objects.get(pk=esc.pk).status, BlocklistProposal.objects.count()) == ("pending", 0)


@pytest.mark.django_db(transaction=True)
def test_two_reviewers_deciding_at_once_exactly_one_wins(reviewer, escalation):
    esc = escalation(severity="low")
    alice, bob = reviewer("verified"), reviewer("verified")
    barrier = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def decide(user, decision):
        try:
            barrier.wait(10)
            services.escalation_decide(escalation_id=esc.pk, decision=decision, tier="verified", actor=user,
                                       actor_label=user.username, note="n")  # fmt: skip
            outcomes[user.username] = "won"
        except services.AlreadyDecided as exc:
            outcomes[user.username] = f"lost to {exc.who}"
        finally:
            connection.close()

    threads = [threading.Thread(target=decide, args=(alice, "approve")),
               threading.Thread(target=decide, args=(bob, "block"))]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)

    winner = Escalation.objects.get(pk=esc.pk).decided_by_label
    loser = bob.username if winner == alice.username else alice.username
    assert outcomes == {winner: "won", loser: f"lost to {winner}"}
    assert AuditEvent.objects.filter(action__startswith="review.escalation.", subject_id=str(esc.pk)).count() == 1


def test_highlight_segments_split_at_span_bounds_and_clamp():
    from review.selectors import highlight_segments

    a = hit(rule_id="a", span=(4, 9))
    b = hit(rule_id="b", span=(6, 99))
    segs = highlight_segments("<b>hello</b>", [a, b, hit(rule_id="bad", span=(5, 2))])

    assert [(s.text, [h["rule_id"] for h in s.hits], [h["rule_id"] for h in s.ends]) for s in segs] == [
        ("<b>h", [], []), ("el", ["a"], []), ("lo<", ["a", "b"], ["a"]), ("/b>", ["b"], ["b"])]  # fmt: skip
