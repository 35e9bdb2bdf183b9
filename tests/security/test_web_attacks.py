"""Stored XSS in prompts and model output (console and admin), CSRF on every state-changing form, open
redirects on login and logout."""

import re

import pytest
from django.contrib.admin import site as admin_site
from django.test import Client
from django.urls import URLResolver, get_resolver

from audits.models import AuditEvent
from review.services import escalation_create
from safety_admin.inference.models import InferenceRequest, RequestStatus
from safety_admin.inference.services import inference_request_create

pytestmark = [pytest.mark.django_db]

PASSWORD = "correct-horse-battery-9"
PAYLOADS = [
    "<script>alert('xss-1')</script>",
    '"><img src=x onerror=alert("xss-2")>',
    "<svg/onload=alert('xss-3')>",
    "</textarea><iframe srcdoc='<script>alert(4)</script>'>",
    "<a href=\"javascript:alert('xss-5')\">click</a>",
]
# What must never appear unescaped in a page: a tag the payload opened.
RAW_MARKERS = ["<script>alert(", "<img src=x", "<svg/onload", "<iframe", '<a href="javascript:']


@pytest.fixture(autouse=True)
def _fast_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def admin_reviewer(django_user_model):
    """Superuser with the privileged tier: may open every screen, so any 403 below is CSRF's."""
    return django_user_model.objects.create_user(username="root", password=PASSWORD, tier="privileged",
                                                 is_staff=True, is_superuser=True)  # fmt: skip


@pytest.fixture
def hostile_escalation():
    text = " ".join(PAYLOADS)
    req = InferenceRequest.objects.create(
        principal_id="apikey:evil", principal_pseudonym="u_evil", principal_tier="user", status=RequestStatus.IN_REVIEW,
        user_input=f"prompt {text}", system_prompt=f"system {text}", response=f"output {text}",
        metadata={"note": text},
    )  # fmt: skip
    hits = [{"rule_id": "r.x", "reason_code": "HIGH_RISK_WEAPON", "severity": "critical", "action": "review",
             "span": [7, 40], "view": "base", "field": "user_input"},
            {"rule_id": "r.y", "reason_code": "SECRET_LEAK", "severity": "high", "action": "review",
             "span": [7, 40], "view": "base", "field": "response"}]  # fmt: skip
    return escalation_create(request=req, direction="output", severity="critical", hits=hits)


def assert_escaped(html: str, where: str) -> None:
    for marker in RAW_MARKERS:
        assert marker not in html, f"unescaped {marker!r} in {where}"


def test_console_detail_and_queue_escape_prompt_and_output(client, admin_reviewer, hostile_escalation):
    client.force_login(admin_reviewer)
    detail = client.get(f"/review/escalations/{hostile_escalation.pk}/")
    queue = client.get("/")
    assert (detail.status_code, queue.status_code) == (200, 200)
    html = detail.content.decode()
    assert_escaped(html, "review detail")
    assert_escaped(queue.content.decode(), "review queue")
    assert "&lt;script&gt;alert(&#x27;xss-1&#x27;)&lt;/script&gt;" in html  # shown, as text
    # Defence in depth: no inline script may run even if something slipped through.
    assert "script-src 'self'" in detail["Content-Security-Policy"]


def test_admin_pages_escape_prompt_output_and_audit_data(client, admin_reviewer, hostile_escalation):
    client.force_login(admin_reviewer)
    req = hostile_escalation.request
    # A request and its audit event carrying the hostile text, written the way the gateway writes them.
    from safety_admin.detectors import check
    from safety_admin.gateway.auth import Principal

    verdict = check(PAYLOADS[0], "prompt")
    created, _event = inference_request_create(
        principal=Principal(principal_id="apikey:evil", tier="user", label="evil"), user_input=" ".join(PAYLOADS),
        system_prompt="", model_name="<b>m</b>", metadata={"k": PAYLOADS[1]}, verdict=verdict, hits=[], trace_id="",
    )  # fmt: skip
    pages = {}
    for model in admin_site._registry:
        meta = model._meta
        pages[f"{meta.label} list"] = client.get(f"/admin/{meta.app_label}/{meta.model_name}/?q=script")
    pages["request change"] = client.get(f"/admin/inference/inferencerequest/{req.pk}/change/")
    pages["new request change"] = client.get(f"/admin/inference/inferencerequest/{created.pk}/change/")
    pages["escalation change"] = client.get(f"/admin/review/escalation/{hostile_escalation.pk}/change/")
    for event in AuditEvent.objects.filter(request_id__in=[str(req.pk), str(created.pk)]):
        pages[f"audit {event.pk}"] = client.get(f"/admin/audits/auditevent/{event.pk}/change/")
    for where, response in pages.items():
        assert response.status_code == 200, where
        assert_escaped(response.content.decode(), where)


def _screens():
    for route, name in _walk(get_resolver().url_patterns):
        if not route.startswith(("safety/", "health", "ready", "metrics", "admin/rq/", "bench/")):
            yield route, name


def _walk(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            yield prefix + str(pattern.pattern), pattern.name


def test_every_form_post_without_a_csrf_token_is_refused(admin_reviewer, hostile_escalation):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_reviewer)
    ids = {"escalation_id": str(hostile_escalation.pk)}
    posted = []
    for route, _name in _screens():
        path = "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: ids.get(m.group(1), "1"), route)
        response = client.post(path, {"decision": "approve", "note": "n"})
        posted.append(path)
        assert response.status_code == 403, f"POST {path} without a CSRF token: {response.status_code}"
    for model in admin_site._registry:
        path = f"/admin/{model._meta.app_label}/{model._meta.model_name}/add/"
        assert client.post(path, {}).status_code == 403, path
    assert len(posted) >= 20
    # Control: the same decision with the token goes through, so the 403s above were CSRF's.
    client.get(f"/review/escalations/{hostile_escalation.pk}/")
    token = client.cookies["csrftoken"].value
    decided = client.post(f"/review/escalations/{hostile_escalation.pk}/decide/",
                          {"decision": "block", "note": "n", "csrfmiddlewaretoken": token})  # fmt: skip
    assert decided.status_code == 302


EVIL_NEXT = [
    "https://evil.example/",
    "//evil.example/",
    "/\\evil.example/",
    "https:evil.example",
    "\\\\evil.example",
    "http://127.0.0.1.evil.example/",
    " https://evil.example",
    "javascript:alert(1)",
]


@pytest.mark.parametrize("target", EVIL_NEXT)
def test_login_and_logout_never_redirect_off_site(client, django_user_model, target):
    django_user_model.objects.create_user(username="rita", password=PASSWORD, tier="verified")
    login = client.post(f"/accounts/login/?next={target}", {"username": "rita", "password": PASSWORD})
    again = client.get(f"/accounts/login/?next={target}")  # redirect_authenticated_user=True
    logout = client.post(f"/accounts/logout/?next={target}")
    for response in (login, again, logout):
        assert response.status_code == 302
        location = response["Location"]
        assert location.startswith("/"), location
        assert not location.startswith(("//", "/\\")), location
