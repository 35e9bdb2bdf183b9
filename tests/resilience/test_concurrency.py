"""Races and storms against a real gunicorn with 2 workers: one key flooding, two reviewers deciding at once."""

import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

import pytest
from django.conf import settings as django_settings
from django.test import Client

from audits.models import AuditEvent
from review.models import Escalation
from review.services import escalation_create
from safety_admin.gateway import errors
from safety_admin.inference.models import InferenceRequest, RequestStatus
from tests.resilience.conftest import call, infer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.resilience]

STORM = 100  # requests from the flooding key
BYSTANDER = 10  # requests from another key at the same time
RACES = 8  # escalations each decided by two reviewers at the same instant
DECISION_ACTIONS = ("review.escalation.approved", "review.escalation.blocked")


def test_rate_limit_storm_from_one_key_leaves_other_keys_alone(api_key, start_gunicorn, capsys):
    web = start_gunicorn(workers=2, USER_RATE_LIMIT="60", SAFETY_REDIS_TIMEOUT="1.0")
    flood, bystander = api_key(tier="user", name="flood"), api_key(tier="user", name="bystander")

    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        storm = list(pool.map(lambda i: infer(web.url, flood, f"storm {i}"), range(STORM)))
        calm = list(pool.map(lambda i: infer(web.url, bystander, f"calm {i}"), range(BYSTANDER)))
    elapsed = time.monotonic() - started

    accepted = [a for a in storm if a.status == 202]
    limited = [a for a in storm if a.status == 429]
    assert len(accepted) + len(limited) == STORM, sorted({a.status for a in storm})
    # A bucket of 60 tokens refilling at 1/s: the burst, plus what refilled while the storm lasted.
    assert 60 <= len(accepted) <= 60 + int(elapsed) + 1
    for answer in limited:
        assert answer.json()["error"] == errors.RATE_LIMITED
        assert 1 <= int(answer.headers["retry-after"]) <= 60
    assert [a.status for a in calm] == [202] * BYSTANDER
    # A 429 stores nothing: one row per accepted request, none for the refused ones.
    assert InferenceRequest.objects.count() == len(accepted) + BYSTANDER
    with capsys.disabled():
        print(f"\n[resilience] rate-limit storm: {len(accepted)} accepted, {len(limited)} x 429 of {STORM} "
              f"in {elapsed:.1f} s; bystander {BYSTANDER}/{BYSTANDER} accepted")  # fmt: skip


def _escalations(n: int) -> list[Escalation]:
    made = []
    for i in range(n):
        req = InferenceRequest.objects.create(
            principal_id="apikey:race", principal_pseudonym="u_race", principal_tier="user",
            status=RequestStatus.IN_REVIEW, user_input=f"race {i}",
        )  # fmt: skip
        hit = {"rule_id": "r.race", "reason_code": "HIGH_RISK_WEAPON", "severity": "medium", "action": "review",
               "span": [0, 4], "view": "nfkc", "field": "user_input"}  # fmt: skip
        made.append(escalation_create(request=req, direction="prompt", severity="medium", hits=[hit]))
    return made


def _at_once(*calls):
    """Run the calls in threads released by one barrier; their results in order."""
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def run(index, fn):
        barrier.wait(10)
        results[index] = fn()

    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def _assert_one_decision_each(escalations) -> None:
    for esc in escalations:
        esc.refresh_from_db()
        req = InferenceRequest.objects.get(pk=esc.request_id)
        events = list(AuditEvent.objects.filter(request_id=str(req.pk), action__in=DECISION_ACTIONS)
                      .values_list("action", flat=True))  # fmt: skip
        assert len(events) == 1, events
        assert (
            esc.status == {"review.escalation.approved": "approved", "review.escalation.blocked": "blocked"}[events[0]]
        )
        assert req.status == ("blocked" if esc.status == "blocked" else "pending")


def _session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies[django_settings.SESSION_COOKIE_NAME].value


def test_two_reviewers_deciding_at_once_make_exactly_one_decision(api_key, start_gunicorn, django_user_model, settings,
                                                                  capsys):  # fmt: skip
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed; no login happens
    web = start_gunicorn(workers=2, SAFETY_REDIS_TIMEOUT="1.0")

    # Through the API: two verified callers, one approves and one blocks, released by a barrier.
    alice, bob = api_key(tier="verified", name="alice"), api_key(tier="verified", name="bob")
    api_escalations = _escalations(RACES)
    api_statuses = []
    for esc in api_escalations:
        body = {"request_id": str(esc.request_id), "notes": "race"}
        answers = _at_once(
            lambda body=body: call(
                web.url, "POST", "/safety/review", {**body, "decision": "approve"}, {"X-API-Key": alice}
            ),
            lambda body=body: call(
                web.url, "POST", "/safety/review", {**body, "decision": "block"}, {"X-API-Key": bob}
            ),
        )
        api_statuses.append(sorted(a.status for a in answers))
        loser = next(a for a in answers if a.status == 409)
        assert loser.json()["error"] == errors.ALREADY_DECIDED
    assert api_statuses == [[200, 409]] * RACES
    _assert_one_decision_each(api_escalations)

    # Through the console: two signed-in reviewers submit the decide form at the same instant.
    carol = django_user_model.objects.create_user(username="carol", password="x" * 20, tier="verified")
    dave = django_user_model.objects.create_user(username="dave", password="x" * 20, tier="verified")
    console_escalations = _escalations(RACES)
    console_statuses = []
    for esc in console_escalations:
        path = f"/review/escalations/{esc.pk}/decide/"

        def submit(path, decision, cookie):
            token = secrets.token_hex(16)  # an unmasked 32-character CSRF secret, same in cookie and form
            form = urlencode({"decision": decision, "note": "race", "csrfmiddlewaretoken": token}).encode()
            headers = {
                "Content-Type": "application/x-www-form-urlencoded",
                "Cookie": f"{django_settings.SESSION_COOKIE_NAME}={cookie}; {django_settings.CSRF_COOKIE_NAME}={token}",
            }
            return lambda: call(web.url, "POST", path, form, headers)

        answers = _at_once(
            submit(path, "approve", _session_cookie(carol)), submit(path, "block", _session_cookie(dave))
        )
        console_statuses.append(sorted(a.status for a in answers))
    assert console_statuses == [[302, 409]] * RACES
    _assert_one_decision_each(console_escalations)
    with capsys.disabled():
        print(f"\n[resilience] two reviewers at once: {RACES} API races -> 1 x 200 + 1 x 409 each; "
              f"{RACES} console races -> 1 x 302 + 1 x 409 each; one decision event per escalation")  # fmt: skip
