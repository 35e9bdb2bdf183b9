"""The policy screens in real headless Chromium: upload with errors, publish, roll back — under the strict CSP."""

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from safety_admin.policies.models import BlocklistEntry, PolicyVersion

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "policies-Browser-7"


@pytest.fixture
def browser_context(browser):
    context = browser.new_context()
    yield context
    # Closing ends Chromium's keep-alive connections, so the live server's request threads close their
    # database connections before the test database is dropped (even when the test failed).
    context.close()


def test_import_publish_and_rollback_in_the_browser(browser_context, live_server, tmp_path, settings):
    settings.POLICY_CORPUS_DIR = tmp_path / "no-corpus"
    get_user_model().objects.create_user("policy-admin", password=PASSWORD, is_staff=True, is_superuser=True)
    bad, good = tmp_path / "bad.txt", tmp_path / "good.txt"
    bad.write_text("# words\nokapi\n(a+)+\n")
    good.write_text("# words\nokapi\nkudu\n")
    page = browser_context.new_page()
    page.set_default_timeout(15_000)
    problems = []
    # CSP violations and script errors reach the console; failed loads are checked by URL (the login redirect
    # lands on the review queue, which is 403 for an admin without a reviewer tier, and there is no favicon).
    page.on("console", lambda m: m.type == "error" and "Failed to load resource" not in m.text
            and problems.append(m.text))  # fmt: skip
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("response", lambda r: ("/policies/" in r.url or "/static/" in r.url) and r.status >= 400
            and problems.append(f"{r.status} {r.url}"))  # fmt: skip

    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", "policy-admin")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/accounts/login/" not in url)

    # An invalid line is shown with its number and nothing is imported.
    page.goto(f"{live_server.url}/policies/import/")
    page.fill("#id_list_name", "animals")
    page.select_option("#id_match_type", "regex")
    page.select_option("#id_action", "refuse")
    page.set_input_files("#id_file", str(bad))
    page.click("text=Import into the draft")
    expect(page.locator("#import-errors tbody tr")).to_have_text(
        ["3regular expression can backtrack catastrophically (nested or overlapping repetition)"]
    )
    assert BlocklistEntry.objects.count() == 0

    page.fill("#id_list_name", "animals")
    page.select_option("#id_match_type", "word")
    page.select_option("#id_action", "refuse")
    page.set_input_files("#id_file", str(good))
    page.click("text=Import into the draft")
    expect(page.locator("h1")).to_have_text("Policies")
    expect(page.locator("#diff-summary li").first).to_have_text("Entries: 2 added, 0 removed, 0 changed")

    page.click("nav >> text=Publish")
    page.fill("#id_note", "animals")
    page.click("button:has-text('Publish')")
    expect(page.locator("h1")).to_contain_text("v1")
    assert list(PolicyVersion.objects.values_list("number", "is_active", "created_by_label")) == [
        (1, True, "policy-admin")
    ]

    # A second version, then one click (and a confirmation) back to v1.
    BlocklistEntry.objects.filter(pattern="kudu").delete()
    page.click("nav >> text=Publish")
    page.fill("#id_note", "drop kudu")
    page.click("button:has-text('Publish')")
    expect(page.locator("h1")).to_contain_text("v2")
    page.click("nav >> text=Versions")
    page.click("text=Make active…")
    page.click("button:has-text('Make v1 active')")
    expect(page.locator("#version-table tr.active-version td").first).to_contain_text("v1")
    assert PolicyVersion.objects.get(is_active=True).number == 1
    assert problems == []
