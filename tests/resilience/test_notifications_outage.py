"""Slack and PagerDuty down for the run: every notification goes out after they return, none twice.

Reuses the notifications engineer's loopback fakes (tests/notifications/conftest.py) and a real rqworker.
"""

import time

import pytest

from safety_admin.notifications.models import Notification
from tests.conftest import wait_for
from tests.notifications.conftest import pagerduty_env, slack_webhook_env
from tests.stubs import Reply

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.resilience]

ESCALATIONS = 5
FAST = {
    "INFERENCE_SWEEP_SECONDS": "1",
    "NOTIFICATION_RETRY_BASE_SECONDS": "0.3",
    "NOTIFICATION_RETRY_MAX_SECONDS": "1",
    "SITE_URL": "https://safety.example.test",
}


def test_slack_and_pagerduty_down_then_back_deliver_everything_once(configure, fake_slack, fake_pagerduty,
                                                                    make_escalation, start_worker, capsys):  # fmt: skip
    env = {**slack_webhook_env(fake_slack), **pagerduty_env(fake_pagerduty)}
    configure(**env)
    slack_up, pagerduty_up = fake_slack.server.handler, fake_pagerduty.server.handler
    fake_slack.server.handler = lambda rec: Reply(503, "upstream down", {"Content-Type": "text/plain"})
    fake_pagerduty.server.handler = lambda rec: Reply(502, {"status": "down"})
    worker = start_worker(queues=("notifications",), **env, **FAST)

    escalations = [make_escalation("critical", user_input=f"outage {i}") for i in range(ESCALATIONS)]
    # Down long enough for several failed attempts per notification.
    wait_for(lambda: len(fake_slack.requests) >= 2 * ESCALATIONS and len(fake_pagerduty.requests) >= 2 * ESCALATIONS,
             timeout=60, message=f"failed attempts while down; log:\n{worker.output()[-3000:]}")  # fmt: skip
    failed_attempts = len(fake_slack.requests) + len(fake_pagerduty.requests)
    assert set(Notification.objects.values_list("status", flat=True)) == {"pending"}

    fake_slack.server.handler, fake_pagerduty.server.handler = slack_up, pagerduty_up
    back = time.monotonic()
    wait_for(lambda: Notification.objects.count() == 2 * ESCALATIONS
             and set(Notification.objects.values_list("status", flat=True)) == {"delivered"},
             timeout=60, message="every notification delivered after the outage")  # fmt: skip
    recovered = time.monotonic() - back
    time.sleep(1.5)  # a late duplicate would show up within a sweep interval

    # Exactly once at the receivers: one Slack message and one PagerDuty incident per escalation.
    texts = sorted(post["text"] for post in fake_slack.webhook_posts)
    assert texts == sorted(f"CRITICAL escalation #{e.pk} (prompt): HIGH_RISK_WEAPON" for e in escalations)
    assert fake_pagerduty.triggers == ESCALATIONS
    assert fake_pagerduty.incidents == {f"escalation-{e.pk}": "triggered" for e in escalations}
    with capsys.disabled():
        print(f"\n[resilience] Slack+PagerDuty down: {failed_attempts} failed attempts, all {2 * ESCALATIONS} "
              f"delivered {recovered:.1f} s after they returned, none twice")  # fmt: skip
