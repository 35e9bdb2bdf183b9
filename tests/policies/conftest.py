"""Policies tests swap the process-wide ruleset; put the untouched state back for every other test."""

import json
import urllib.error
import urllib.request

import pytest

from safety_admin.policies import runtime
from tests.conftest import free_port  # noqa: F401 - re-exported for the policies tests


@pytest.fixture(autouse=True)
def _fresh_policy_runtime():
    runtime.reset()
    yield
    runtime.reset()


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_user(
        username="polly", password="pw-polly-123", is_staff=True, is_superuser=True
    )


def http_post_json(url: str, payload: dict, headers: dict) -> tuple[int, dict]:
    req = urllib.request.Request(
        url, data=json.dumps(payload).encode(), method="POST", headers={"Content-Type": "application/json", **headers}
    )
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
