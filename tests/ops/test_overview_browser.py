"""The overview in real headless Chromium: the strict CSP holds (no violations) and the keyboard reaches everything."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from playwright.sync_api import expect

from review.models import Escalation
from tests.ops.test_overview import decision, escalation, refusal

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "ops-overview-Browser-7"
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "overview.png"


def test_overview_renders_under_csp_and_works_from_the_keyboard(browser, live_server):
    get_user_model().objects.create_user("ops-lead", password=PASSWORD, is_staff=True)
    for code in ("HIGH_RISK_EXPLOSIVE", "HIGH_RISK_EXPLOSIVE", "HATE", "PRIVACY_PII"):
        refusal(code)
    escalation("critical", "HIGH_RISK_BIO", age=timedelta(minutes=40), sla=timedelta(minutes=15))
    escalation("medium", "HATE", age=timedelta(hours=3), sla=timedelta(hours=4))
    decided = escalation("high", "SECRET_LEAK", age=timedelta(hours=5), sla=timedelta(hours=1))
    Escalation.objects.filter(pk=decided.pk).update(status="blocked", decided_at=timezone.now() - timedelta(hours=4))
    for action in ("review.escalation.approved", "review.escalation.blocked", "review.escalation.blocked"):
        decision(action)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(15_000)
    problems = []
    # CSP violations and script errors show up on the console; failed loads are checked by URL instead
    # (the login redirect lands on the review queue, which is 403 for a staff user without a reviewer tier).
    page.on("console", lambda m: m.type in {"error", "warning"} and "Failed to load resource" not in m.text
            and problems.append(m.text))  # fmt: skip
    page.on("pageerror", lambda exc: problems.append(str(exc)))

    def failed_load(response):
        if ("/ops/" in response.url or "/static/" in response.url) and response.status >= 400:
            problems.append(f"{response.status} {response.url}")

    page.on("response", failed_load)

    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", "ops-lead")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/accounts/login/" not in url)
    page.goto(f"{live_server.url}/ops/overview/")

    expect(page.locator("h1")).to_have_text("Overview")
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Overview")).to_be_visible()
    expect(page.locator("#refusals-title")).to_contain_text("HIGH_RISK_EXPLOSIVE 2, HATE 1, PRIVACY_PII 1")
    # The stylesheet applied (colours come from classes, never inline style).
    fill = page.locator("#refusals-caption + svg rect.series-0").first.evaluate("r => getComputedStyle(r).fill")
    assert fill == "rgb(0, 114, 178)"
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    # Keyboard only: tab to "Last 7 days" and follow it, then open a data table.
    for _ in range(30):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "Last 7 days":
            break
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{live_server.url}/ops/overview/?window=7d")
    for _ in range(30):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.tagName") == "SUMMARY":
            break
    page.keyboard.press("Enter")
    expect(page.locator("details").first).to_have_attribute("open", "")
    expect(page.locator("details").first.locator("tbody tr")).to_have_count(1)

    context.close()
    assert problems == []
