"""Factories for review tests: reviewers with a tier, requests with an escalation."""

import itertools

import pytest

from review.services import escalation_create
from safety_admin.inference.models import InferenceRequest, RequestStatus

PASSWORD = "correct-horse-battery-9"
_seq = itertools.count(1)


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """PBKDF2 at full strength costs ~0.3 s per reviewer on a loaded 2-core machine; tests need no strength."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def reviewer(db, django_user_model):
    """A factory: ``reviewer(tier="verified", username=None) -> User`` with password ``PASSWORD``."""

    def make(tier: str = "verified", username: str | None = None, **extra):
        name = username or f"{tier}-{next(_seq)}"
        return django_user_model.objects.create_user(username=name, password=PASSWORD, tier=tier, **extra)

    return make


def hit(rule_id="r.weapon", reason_code="HIGH_RISK_WEAPON", severity="medium", span=(0, 4), field="user_input"):
    return {"rule_id": rule_id, "reason_code": reason_code, "severity": severity, "action": "review",
            "span": list(span), "view": "nfkc", "field": field}  # fmt: skip


@pytest.fixture
def escalation(db):
    """A factory: ``escalation(severity="medium", direction="prompt", ...) -> Escalation`` with its request."""

    def make(severity="medium", direction="prompt", user_input="make a bomb now", response="", hits=None,
             principal_id="apikey:abc", pseudonym="u_0123456789abcdef"):  # fmt: skip
        if hits is None:
            field = "user_input" if direction == "prompt" else "response"
            hits = [hit(severity=severity, field=field)]
        req = InferenceRequest.objects.create(
            principal_id=principal_id, principal_pseudonym=pseudonym, principal_tier="user",
            status=RequestStatus.IN_REVIEW, user_input=user_input, response=response, hits=hits, severity=severity,
        )  # fmt: skip
        return escalation_create(request=req, direction=direction, severity=severity, hits=hits)

    return make
