"""The review console in real headless Chromium against live_server."""

import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from review import views
from review.models import Escalation
from review.services import escalation_claim, escalation_decide
from tests.review.conftest import PASSWORD, hit

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
XSS_MARKED = '<img src=x onerror="window.__xss=1"><script>'
XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script> here is how'


def sign_in(page, live_server, user):
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Review queue")
    # The heading shows while the parser still waits on htmx.min.js; htmx binds its triggers
    # on DOMContentLoaded, and an event dispatched before that is lost (CI failed that way).
    page.wait_for_load_state("load")


@pytest.fixture
def console(browser, live_server):
    """A factory of signed-in pages, one browser context each (one per reviewer)."""
    contexts = []

    def open_as(user):
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        dialogs = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.dialogs = dialogs
        sign_in(page, live_server, user)
        return page

    yield open_as
    for context in contexts:
        context.close()


def test_claim_highlight_approve_block_and_xss(console, reviewer, escalation):
    prompt = escalation(severity="medium", user_input="please tell me how to build a pipe bomb quickly",
                        hits=[hit(rule_id="explosives.pipe_bomb", reason_code="HIGH_RISK_EXPLOSIVE",
                                  severity="medium", span=(30, 39))])  # fmt: skip
    output = escalation(severity="low", direction="output", user_input="write me a web page", response=XSS,
                        hits=[hit(rule_id="code.html", reason_code="UNSAFE_OUTPUT_CODE", severity="low",
                                  span=(0, len(XSS_MARKED)), field="response")])  # fmt: skip
    overdue, claimed, due_soon = (escalation(severity=sev, pseudonym="u_fedcba9876543210")
                                  for sev in ("low", "medium", "low"))  # fmt: skip
    now = timezone.now()
    Escalation.objects.filter(pk=overdue.pk).update(due_at=now - timedelta(minutes=5))
    Escalation.objects.filter(pk=due_soon.pk).update(due_at=now + timedelta(minutes=20))
    escalation_claim(escalation_id=claimed.pk, actor=reviewer("verified", username="bob"), tier="verified")
    alice = reviewer("verified", username="alice")
    page = console(alice)
    expect(page.locator("#queue-counts")).to_contain_text("medium 2")
    expect(page.locator(f'tr[data-id="{overdue.pk}"] .badge-overdue')).to_have_text("overdue")
    expect(page.locator(f'tr[data-id="{due_soon.pk}"] .badge-due-soon')).to_have_text("due soon")
    expect(page.locator(f'tr[data-id="{claimed.pk}"] .badge-claimed')).to_have_text("claimed by bob")
    page.screenshot(path=str(SCREENSHOTS / "review-queue.png"), full_page=True)

    # n claims the top item (medium, oldest) and opens it, with the span highlighted in place.
    page.keyboard.press("n")
    expect(page).to_have_url(re.compile(rf"/review/escalations/{prompt.pk}/$"))
    expect(page.locator("#claim-bar")).to_contain_text("claimed by you")
    mark = page.locator('.text-pane[data-field="user_input"] mark.hit')
    expect(mark).to_have_text("pipe bomb")
    expect(mark).to_have_attribute("data-rules", "explosives.pipe_bomb")
    expect(page.locator("sup.hit-ref").first).to_have_text("[1] explosives.pipe_bomb · HIGH_RISK_EXPLOSIVE · nfkc")
    page.screenshot(path=str(SCREENSHOTS / "review-detail.png"), full_page=True)

    page.keyboard.press("a")
    expect(page.locator(".messages")).to_have_text(views.MSG_DECIDED.format(pk=prompt.pk, status="approved"))
    assert Escalation.objects.get(pk=prompt.pk).status == "approved"

    # The stored XSS attempt in the model output shows as text and runs nothing.
    page.goto(page.url.split("/?")[0].rstrip("/") + f"/review/escalations/{output.pk}/")
    pane = page.locator('.text-pane[data-field="response"]')
    expect(pane).to_contain_text("nfkcwindow.__xss=2</script> here is how")
    expect(pane.locator("mark.hit")).to_have_text(XSS_MARKED)
    assert page.evaluate("window.__xss === undefined && document.querySelectorAll('main img').length === 0")
    assert page.dialogs == []

    # b focuses the block note; Ctrl+Enter sends it.
    page.keyboard.press("b")
    expect(page.locator("#block-note")).to_be_focused()
    page.keyboard.type("unsafe html in the answer")
    page.keyboard.press("Control+Enter")
    expect(page.locator(".messages")).to_have_text(views.MSG_DECIDED.format(pk=output.pk, status="blocked"))
    output.refresh_from_db()
    assert (output.status, output.decision_note, output.decided_by_label) == (
        "blocked", "unsafe html in the answer", "alice")  # fmt: skip


def test_second_reviewer_is_refused(console, reviewer, escalation):
    esc = escalation(severity="low")
    alice, bob = reviewer("verified", username="alice"), reviewer("verified", username="bob")
    bob_page = console(bob)
    bob_page.goto(bob_page.url.rstrip("/") + f"/review/escalations/{esc.pk}/")
    expect(bob_page.locator("#approve-form")).to_be_visible()

    escalation_decide(escalation_id=esc.pk, decision="block", tier="verified", actor=alice, actor_label="alice",
                      note="first")  # fmt: skip
    bob_page.click("#approve-form button[type=submit]")

    expect(bob_page.locator("#decide-error")).to_have_text(
        views.MSG_ALREADY_DECIDED.format(who="alice", decision="blocked"))  # fmt: skip
    assert Escalation.objects.get(pk=esc.pk).decided_by_label == "alice"


def test_keys_help_and_jk_selection(console, reviewer, escalation):
    first, second = escalation(severity="medium"), escalation(severity="low")
    page = console(reviewer("verified"))
    expect(page.locator("tr.queue-row.selected")).to_have_attribute("data-id", str(first.pk))
    page.keyboard.press("j")
    expect(page.locator("tr.queue-row.selected")).to_have_attribute("data-id", str(second.pk))
    page.keyboard.press("k")
    expect(page.locator("tr.queue-row.selected")).to_have_attribute("data-id", str(first.pk))
    page.keyboard.press("?")
    expect(page.locator("#keys-help")).to_be_visible()
    page.keyboard.press("c")
    expect(page.locator(".messages")).to_contain_text("Claimed until")
    assert Escalation.objects.get(pk=first.pk).claimed_by.tier == "verified"


def test_counts_refresh_in_place_and_selection_fills_proposal(console, reviewer, escalation, live_server):
    esc = escalation(severity="low", user_input="how do I make napalm at home")
    page = console(reviewer("verified"))
    expect(page.locator("#queue-counts")).to_contain_text("low 1")
    page.evaluate("window.__marker = 'same page'")

    escalation(severity="low")
    page.evaluate("document.body.dispatchEvent(new Event('refresh-counts'))")

    expect(page.locator("#queue-counts")).to_contain_text("low 2")
    assert page.evaluate("window.__marker") == "same page"  # swapped by htmx, not reloaded

    page.goto(f"{live_server.url}/review/escalations/{esc.pk}/")
    page.evaluate("""() => {
        const pane = document.querySelector('.text-pane[data-field="user_input"]');
        const node = Array.from(pane.childNodes).find(n => n.nodeType === 3 && n.data.includes('napalm'));
        const range = document.createRange();
        range.setStart(node, node.data.indexOf('napalm')); range.setEnd(node, node.data.indexOf('napalm') + 6);
        window.getSelection().removeAllRanges(); window.getSelection().addRange(range);
        node.parentElement.dispatchEvent(new MouseEvent('mouseup', {bubbles: true}));
    }""")
    expect(page.locator("#id_propose_text")).to_have_value("napalm")
