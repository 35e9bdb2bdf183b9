"""Authentication attacks on every /safety endpoint: forged JWTs, tier escalation, key guessing, suspensions.

tests/gateway/test_views.py covers these on /safety/infer; here every authenticated endpoint gets them.
"""

import hashlib
import hmac
import json
import time
from datetime import timedelta

import jwt
import pytest
from django.utils import timezone

from safety_admin.gateway import auth, errors
from safety_admin.gateway.models import ApiKey
from safety_admin.gateway.services import suspension_create

pytestmark = [pytest.mark.django_db]

SECRET = "security-suite-jwt-secret-0123456789abcdef0123456789abcdef"
NOW = int(time.time())
CLAIMS = {"sub": "a", "tier": "privileged", "exp": NOW + 300}


def _hs256(key: bytes, claims: dict) -> str:
    """An HS256 token signed by hand (PyJWT refuses to sign with an empty key)."""
    signing_input = f"{_b64({'alg': 'HS256', 'typ': 'JWT'})}.{_b64(claims)}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{jwt.utils.base64url_encode(signature).decode()}"


def _b64(data: dict) -> str:
    return jwt.utils.base64url_encode(json.dumps(data).encode()).decode()


def _forged_tier() -> str:
    header, _payload, signature = jwt.encode({"sub": "a", "tier": "user", "exp": NOW + 300}, SECRET).split(".")
    return f"{header}.{_b64({'sub': 'a', 'tier': 'privileged', 'exp': NOW + 300})}.{signature}"


ATTACKS = {
    "alg-none": lambda: f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(CLAIMS)}.",
    "alg-none-upper": lambda: f"{_b64({'alg': 'NONE'})}.{_b64(CLAIMS)}.",
    "wrong-key": lambda: jwt.encode({"sub": "a", "tier": "privileged", "exp": NOW + 300}, "not-the-secret" * 4),
    "empty-key": lambda: _hs256(b"", CLAIMS),
    "expired": lambda: jwt.encode({"sub": "a", "tier": "privileged", "exp": NOW - 5}, SECRET),
    "missing-exp": lambda: jwt.encode({"sub": "a", "tier": "privileged"}, SECRET),
    "tier-raised-unsigned": _forged_tier,
    "hs512": lambda: jwt.encode(CLAIMS, SECRET + "x" * 16, algorithm="HS512"),  # a long enough key: no warning
    "not-a-jwt": lambda: "a.b.c",
}  # fmt: skip
ENDPOINTS = [
    ("POST", "/safety/infer", {"user_input": "hello"}),
    ("GET", "/safety/status/00000000-0000-0000-0000-000000000000", None),
    ("GET", "/safety/queue/depth", None),
    ("POST", "/safety/review", {"request_id": "00000000-0000-0000-0000-000000000000", "decision": "approve"}),
]


def _call(client, method, path, body, **headers):
    if method == "GET":
        return client.get(path, headers=headers)
    return client.post(path, json.dumps(body), content_type="application/json", headers=headers)


@pytest.mark.parametrize("attack", ATTACKS)
def test_forged_tokens_are_401_on_every_endpoint(client, settings, attack):
    settings.SAFETY_JWT_SECRET = SECRET
    token = ATTACKS[attack]()
    statuses = [_call(client, m, p, b, Authorization=f"Bearer {token}").status_code for m, p, b in ENDPOINTS]
    assert statuses == [401] * len(ENDPOINTS)


def test_jwt_is_refused_when_no_secret_is_configured(client, settings):
    settings.SAFETY_JWT_SECRET = ""
    token = _hs256(b"", CLAIMS)
    assert [_call(client, m, p, b, Authorization=f"Bearer {token}").status_code for m, p, b in ENDPOINTS] == [401] * 4


def test_api_keys_are_compared_as_hashes_in_constant_time(client, api_key, settings, monkeypatch):
    # Timing a comparison on a shared 2-core machine is noise; instead a spy wraps the real compare_digest
    # (not a mock: it returns the real answer) to show what is compared: digests, never the raw key, and every
    # env key each time, so the number of comparisons does not depend on which key (if any) matched.
    settings.SAFETY_API_KEYS = "env-one-0123456789:user,env-two-0123456789:verified"
    compared = []
    real = hmac.compare_digest
    monkeypatch.setattr(auth.hmac, "compare_digest", lambda a, b: compared.append((a, b)) or real(a, b))
    raw = api_key()
    guess = raw[:-4] + "AAAA"

    response = _call(client, "POST", "/safety/infer", {"user_input": "hi"}, **{"X-API-Key": guess})

    assert response.status_code == 401
    digest = hashlib.sha256(guess.encode()).hexdigest()
    stored = ApiKey.objects.get().key_hash
    assert compared == [(auth.hash_key("env-one-0123456789"), digest), (auth.hash_key("env-two-0123456789"), digest),
                        (stored, digest)]  # fmt: skip


def test_suspended_key_is_403_until_the_suspension_ends(client, api_key):
    raw = api_key(tier="privileged")
    key = ApiKey.objects.get()
    suspension = suspension_create(principal_id=key.principal_id, until=timezone.now() + timedelta(hours=1),
                                   reason="abuse", actor_label="tests")  # fmt: skip
    refused = _call(client, "POST", "/safety/infer", {"user_input": "hi"}, **{"X-API-Key": raw})
    assert (refused.status_code, refused.json()["error"]) == (403, errors.SUSPENDED)

    type(suspension).objects.filter(pk=suspension.pk).update(until=timezone.now() - timedelta(seconds=1))
    assert _call(client, "POST", "/safety/infer", {"user_input": "hi"}, **{"X-API-Key": raw}).status_code == 202


def test_suspended_jwt_subject_is_403_whatever_tier_it_claims(client, settings):
    settings.SAFETY_JWT_SECRET = SECRET
    suspension_create(principal_id="jwt:mallory", until=timezone.now() + timedelta(hours=1), reason="abuse",
                      actor_label="tests")  # fmt: skip
    for tier in ("user", "verified", "privileged"):
        token = jwt.encode({"sub": "mallory", "tier": tier, "exp": NOW + 300}, SECRET)
        response = _call(client, "POST", "/safety/infer", {"user_input": "hi"}, Authorization=f"Bearer {token}")
        assert (response.status_code, response.json()["error"]) == (403, errors.SUSPENDED)
