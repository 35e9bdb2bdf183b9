import pytest
from django.urls import reverse

from audits.chain import canonical_json
from audits.models import AuditEvent
from audits.signals import ACTION_SIGN_IN_FAILED, ACTION_SIGNED_IN, ACTION_SIGNED_OUT
from safety_admin.accounts.models import User
from safety_admin.privacy import decrypt_identifier, pseudonymize

pytestmark = pytest.mark.django_db
PASSWORD = "correct-Horse-battery-9"


@pytest.fixture
def rita():
    return User.objects.create_user(username="rita", password=PASSWORD, tier="verified")


def _events():
    return list(AuditEvent.objects.order_by("id"))


def test_sign_in_and_sign_out_are_recorded(client, rita):
    response = client.post(reverse("login"), {"username": "rita", "password": PASSWORD}, REMOTE_ADDR="10.0.0.7")
    client.post(reverse("logout"), REMOTE_ADDR="10.0.0.7")

    assert response.status_code == 302
    assert [(e.action, e.actor_id, e.actor_label, e.subject_type, e.subject_id, e.data) for e in _events()] == [
        (ACTION_SIGNED_IN, rita.pk, "rita", "accounts.user", str(rita.pk), {"ip": pseudonymize("10.0.0.7")}),
        (ACTION_SIGNED_OUT, rita.pk, "rita", "accounts.user", str(rita.pk), {"ip": pseudonymize("10.0.0.7")}),
    ]


def test_failed_sign_ins_are_recorded_without_password_or_clear_username(client, rita, settings):
    wrong = "wrong-password-123"
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(reverse("login"), {"username": "rita", "password": wrong}, REMOTE_ADDR="10.0.0.8")

    events = _events()
    assert [(e.action, e.actor_id, e.actor_label, e.principal_pseudonym, e.data) for e in events] == [
        (ACTION_SIGN_IN_FAILED, None, "anonymous", pseudonymize("username:rita"),
         {"ip": pseudonymize("10.0.0.8"), "locked_out": n == settings.AXES_FAILURE_LIMIT - 1})
        for n in range(settings.AXES_FAILURE_LIMIT)
    ]  # fmt: skip
    stored = canonical_json([e.chained_values() for e in events]) + "".join(e.principal_ciphertext for e in events)
    assert (wrong in stored, "rita" in stored) == (False, False)
    assert decrypt_identifier(events[0].principal_ciphertext, context=events[0].ticket_id) == "username:rita"
