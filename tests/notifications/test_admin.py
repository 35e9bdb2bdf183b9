"""The outbox in the Django admin: read-only list and delivery log, and the "retry now" action."""

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from audits.models import AuditEvent
from safety_admin.accounts.models import User
from safety_admin.notifications import services
from safety_admin.notifications.admin import NOTHING_RETRIED, RETRIED
from safety_admin.notifications.models import Notification
from tests.notifications.conftest import pagerduty_env
from tests.stubs import Reply

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:notifications_notification_changelist"


@pytest.fixture
def failed_row(configure, fake_pagerduty, make_escalation):
    configure(**pagerduty_env(fake_pagerduty))
    row = Notification.objects.get(escalation=make_escalation("high"))
    fake_pagerduty.fail_next(Reply(503), Reply(400, {"status": "invalid event", "errors": ["bad"]}))
    services.notification_deliver(notification_id=row.pk)
    Notification.objects.filter(pk=row.pk).update(next_attempt_at=row.created_at)
    services.notification_deliver(notification_id=row.pk)
    row.refresh_from_db()
    assert row.status == "failed"
    return row


def test_anonymous_is_sent_to_login(client):
    response = client.get(reverse(CHANGELIST))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_change_page_shows_the_delivery_log(admin_client, failed_row):
    response = admin_client.get(reverse("admin:notifications_notification_change", args=[failed_row.pk]))

    assert response.status_code == 200
    inline = response.context["inline_admin_formsets"][0]
    rows = [(form.original.number, form.original.outcome, form.original.http_status, form.original.detail)
            for form in inline]  # fmt: skip
    assert rows == [(1, "retry", 503, "PagerDuty answered 503"), (2, "failed", 400, "PagerDuty answered 400: bad")]
    assert b'name="_save"' not in response.content  # read-only: nothing to save


def test_changelist_queries_do_not_grow_with_rows(admin_client, configure, fake_pagerduty, make_escalation):
    configure(**pagerduty_env(fake_pagerduty))
    make_escalation("high")
    with CaptureQueriesContext(connection) as one:
        assert admin_client.get(reverse(CHANGELIST)).status_code == 200
    for _ in range(6):
        make_escalation("high")
    with CaptureQueriesContext(connection) as seven:
        response = admin_client.get(reverse(CHANGELIST))

    assert response.context["cl"].result_count == 7
    assert len(seven.captured_queries) == len(one.captured_queries)


def test_retry_now_action_requeues_and_audits(admin_client, admin_user, failed_row, redis_client,
                                              django_capture_on_commit_callbacks):  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse(CHANGELIST), {"action": "retry_now", "_selected_action": [failed_row.pk]},
                                     follow=True)  # fmt: skip

    assert [str(m) for m in response.context["messages"]] == [RETRIED.format(n=1)]
    failed_row.refresh_from_db()
    assert failed_row.status == "pending"
    assert redis_client.exists(f"rq:job:notify-{failed_row.pk}-3") == 1
    event = AuditEvent.objects.get(action="notifications.notification.retry_requested")
    assert (event.actor_id, event.actor_label, event.subject_id) == (admin_user.pk, "admin", str(failed_row.pk))


def test_retry_now_on_a_delivered_row_changes_nothing(admin_client, configure, fake_pagerduty, make_escalation):
    configure(**pagerduty_env(fake_pagerduty))
    row = Notification.objects.get(escalation=make_escalation("high"))
    services.notification_deliver(notification_id=row.pk)

    response = admin_client.post(reverse(CHANGELIST), {"action": "retry_now", "_selected_action": [row.pk]},
                                 follow=True)  # fmt: skip

    assert [str(m) for m in response.context["messages"]] == [NOTHING_RETRIED]
    row.refresh_from_db()
    assert row.status == "delivered"


def test_view_only_staff_cannot_retry(client, failed_row):
    user = User.objects.create_user("viewer", password="pw-Viewer-123", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_notification"))
    client.force_login(user)

    listing = client.get(reverse(CHANGELIST))
    response = client.post(reverse(CHANGELIST), {"action": "retry_now", "_selected_action": [failed_row.pk]})

    assert listing.status_code == 200
    assert listing.context["action_form"] is None  # no action offered
    assert response.status_code == 200  # the changelist again, with "no action selected"
    failed_row.refresh_from_db()
    assert failed_row.status == "failed"
