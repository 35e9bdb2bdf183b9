"""Access-control matrix: every screen (listed from the URLconf at run time) x anonymous/user/verified/
privileged/auditor/staff, and every /safety endpoint x API tiers.

Outcomes are classes, not exact codes: ``login`` (302 to a login page), ``deny`` (403), ``ok`` (anything a
permitted caller can get: 200, a redirect elsewhere, 400/404/409 for placeholder ids, ...).
"""

import re

import pytest
from django.contrib.admin import site as admin_site
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import URLResolver, get_resolver

from review.services import escalation_create
from safety_admin.inference.models import InferenceRequest, RequestStatus

pytestmark = [pytest.mark.django_db]

ROLES = ["anonymous", "user", "verified", "privileged", "auditor", "staff"]
SAMPLE = {"pk": "999999", "number": "999999", "queue_index": "0", "job_id": "nope", "result_id": "nope",
          "key": "nope", "scheduler_index": "0", "connection_index": "0", "scheduler_name": "nope",
          "cron_job_name": "nope", "token": "nope"}  # fmt: skip
# Public or separately tested: the JSON API (below), probes, login/logout, the admin (its own matrix below).
SKIP_PREFIXES = ("safety/", "health", "ready", "metrics", "accounts/", "admin/", "bench/")


def _walk(patterns, prefix="", namespace=None):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern), pattern.namespace or namespace)
        else:
            yield prefix + str(pattern.pattern), f"{namespace}:{pattern.name}" if namespace else pattern.name


def screens() -> list[tuple[str, str]]:
    """(route, name) of every HTML screen in the URLconf, read at run time; django-rq's dashboard included."""
    found = []
    for route, name in _walk(get_resolver().url_patterns):
        # django-rq's per-job/worker/scheduler pages raise on an unknown id or a missing rq_scheduler (third-party).
        per_item = any(f":{p}>" in route for p in ("job_id", "result_id", "key", "scheduler_index", "scheduler_name"))
        if (route.startswith("admin/rq/") and "^" not in route and not per_item) or not route.startswith(SKIP_PREFIXES):
            found.append((route, name))
    return found


def concrete(route: str, escalation_id: int) -> str:
    def fill(match):
        name = match.group(2)
        return str(escalation_id) if name == "escalation_id" else SAMPLE[name]

    return "/" + re.sub(r"<(?:(\w+):)?(\w+)>", fill, route)


def expected(name: str, role: str, method: str) -> set[str]:
    namespace = name.split(":")[0]
    if role == "anonymous":
        return {"login"}
    if namespace == "review":
        if name == "review:stats":
            return {"ok"} if role in {"privileged", "auditor", "staff"} else {"deny"}
        return {"ok"} if role in {"verified", "privileged"} else {"deny"}
    if namespace == "overview":
        return {"ok"} if role in {"auditor", "staff"} else {"deny"}
    # policies and django_rq: staff screens (staff_member_required sends non-staff to the admin login).
    if role == "staff":
        return {"ok"}
    if role == "auditor":
        # Auditors read and change nothing (DESIGN.md §3): looking is fine, a state change must be refused.
        return {"ok", "deny"} if method == "GET" else {"deny", "login"}
    return {"login"}


def outcome(response) -> str:
    if response.status_code == 403:
        return "deny"
    if response.status_code == 302 and "login" in response["Location"]:
        return "login"
    assert response.status_code != 500
    return "ok"


@pytest.fixture(autouse=True)
def _fast_hasher(settings):
    """Full-strength PBKDF2 costs ~0.3 s per user on a loaded 2-core machine; these tests need no strength."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def people(django_user_model):
    auditors = Group.objects.get(name="Auditors")

    def make(role: str):
        if role == "anonymous":
            return None
        tier = role if role in {"user", "verified", "privileged"} else "user"
        user = django_user_model.objects.create_user(
            username=role, password="x" * 20, tier=tier, is_staff=role in {"auditor", "staff"},
            is_superuser=role == "staff",
        )  # fmt: skip
        if role == "auditor":
            user.groups.add(auditors)
        return user

    return {role: make(role) for role in ROLES}


@pytest.fixture
def escalation_id():
    req = InferenceRequest.objects.create(principal_id="apikey:m", principal_pseudonym="u_m", principal_tier="user",
                                          status=RequestStatus.IN_REVIEW, user_input="matrix")  # fmt: skip
    hit = {"rule_id": "r", "reason_code": "HIGH_RISK_WEAPON", "severity": "medium", "action": "review",
           "span": [0, 3], "view": "nfkc", "field": "user_input"}  # fmt: skip
    return escalation_create(request=req, direction="prompt", severity="medium", hits=[hit]).pk


def _request(client, path):
    response = client.get(path)
    if response.status_code == 405:
        return "POST", client.post(path, {})
    return "GET", response


# This matrix once found that staff status alone let an auditor publish policy or empty a queue; policy
# changes now need policies.change_blocklist and the RQ screens a superuser.


def test_every_screen_by_every_role(people, escalation_id, settings, tmp_path):
    # The policy preview replays the corpus and recent requests (~25 s here); access is what this test is about.
    settings.POLICY_CORPUS_DIR = tmp_path
    settings.POLICY_PREVIEW_RECENT = 0
    found, wrong = {}, []
    for role, user in people.items():
        client = Client()
        if user is not None:
            client.force_login(user)
        for route, name in screens():
            path = concrete(route, escalation_id)
            method, response = _request(client, path)
            got = outcome(response)
            found[(name, role)] = got
            if got not in expected(name, role, method):
                wrong.append(f"{method} {path} ({name}) as {role}: {got} ({response.status_code})")
    assert len({name for name, _ in found}) >= 20  # the walk found the screens
    assert wrong == []


def test_admin_by_every_role(people):
    models = [m for m in admin_site._registry]
    for role, user in people.items():
        client = Client()
        if user is not None:
            client.force_login(user)
        index = client.get("/admin/")
        if role in {"auditor", "staff"}:
            assert index.status_code == 200, role
        else:
            assert outcome(index) == "login", role
        for model in models:
            meta = model._meta
            changelist = client.get(f"/admin/{meta.app_label}/{meta.model_name}/")
            add = client.get(f"/admin/{meta.app_label}/{meta.model_name}/add/")
            if role == "staff":
                assert changelist.status_code == 200, meta.label
            elif role == "auditor":
                if meta.app_label == "audits":
                    assert changelist.status_code == 200, meta.label
                assert add.status_code == 403, meta.label  # auditors add nothing anywhere
            else:
                assert (outcome(changelist), outcome(add)) == ("login", "login"), (role, meta.label)


API_TIERS = ["anonymous", "user", "verified", "privileged"]


@pytest.mark.parametrize("tier", API_TIERS)
def test_api_endpoints_by_tier(client, api_key, tier, escalation_id):
    headers = {} if tier == "anonymous" else {"X-API-Key": api_key(tier=tier)}
    request_id = str(InferenceRequest.objects.get(escalations__pk=escalation_id).pk)
    calls = {
        "infer": client.post("/safety/infer", {"user_input": "hello"}, content_type="application/json",
                             headers=headers).status_code,
        "status": client.get(f"/safety/status/{request_id}", headers=headers).status_code,
        "depth": client.get("/safety/queue/depth", headers=headers).status_code,
        "review": client.post("/safety/review", {"request_id": request_id, "decision": "block", "notes": "n"},
                              content_type="application/json", headers=headers).status_code,
        "openapi": client.get("/safety/openapi.json").status_code,
    }  # fmt: skip
    expected_calls = {
        # The escalated request belongs to another principal: only privileged callers may read it.
        "anonymous": {"infer": 401, "status": 401, "depth": 401, "review": 401, "openapi": 200},
        "user": {"infer": 202, "status": 404, "depth": 200, "review": 403, "openapi": 200},
        "verified": {"infer": 202, "status": 404, "depth": 200, "review": 200, "openapi": 200},
        "privileged": {"infer": 202, "status": 200, "depth": 200, "review": 200, "openapi": 200},
    }[tier]
    assert calls == expected_calls
