"""Policies tests swap the process-wide ruleset; put the untouched state back for every other test."""

import pytest

from safety_admin.policies import runtime


@pytest.fixture(autouse=True)
def _fresh_policy_runtime():
    runtime.reset()
    yield
    runtime.reset()


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_user(username="polly", password="pw-polly-123", is_staff=True,
                                                 is_superuser=True)  # fmt: skip
