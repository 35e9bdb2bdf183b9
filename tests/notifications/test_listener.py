"""New outbox rows reach Redis through PostgreSQL NOTIFY and a worker's OutboxListener, not the request path."""

import logging

import pytest
from django.db import transaction
from rq.job import Job, JobStatus

from safety_admin.notifications import listener as listener_module
from safety_admin.notifications.listener import OutboxListener
from safety_admin.notifications.models import Notification
from tests.conftest import wait_for
from tests.notifications.conftest import pagerduty_env, slack_webhook_env

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def outbox_listener():
    started = []

    def start() -> OutboxListener:
        thread = OutboxListener()
        thread.start()
        started.append(thread)
        assert thread.listening.wait(10), "the listener never got to LISTEN"
        return thread

    yield start
    for thread in started:
        thread.stop()
        thread.join(5)


def test_committed_rows_get_their_first_job(configure, fake_slack, fake_pagerduty, make_escalation, redis_client,
                                            outbox_listener):  # fmt: skip
    configure(**slack_webhook_env(fake_slack), **pagerduty_env(fake_pagerduty))
    outbox_listener()

    escalation = make_escalation("critical")

    ids = list(Notification.objects.filter(escalation=escalation).order_by("id").values_list("id", flat=True))
    assert len(ids) == 2
    wait_for(lambda: redis_client.exists(*[f"rq:job:notify-{i}-1" for i in ids]) == 2, timeout=10,
             message="both first-attempt jobs queued after commit")  # fmt: skip
    jobs = [Job.fetch(f"notify-{i}-1", connection=redis_client) for i in ids]
    assert [(job.get_status(), job.args) for job in jobs] == [(JobStatus.QUEUED, (i,)) for i in ids]


def test_rolled_back_rows_are_never_announced(configure, fake_slack, make_escalation, redis_client,
                                              outbox_listener):  # fmt: skip
    configure(**slack_webhook_env(fake_slack))
    outbox_listener()

    with transaction.atomic():
        escalation = make_escalation("high")
        doomed = Notification.objects.get(escalation=escalation).pk
        transaction.set_rollback(True)
    kept = Notification.objects.get(escalation=make_escalation("high")).pk  # committed after the rolled-back one

    wait_for(lambda: redis_client.exists(f"rq:job:notify-{kept}-1") == 1, timeout=10, message="the committed row")
    assert redis_client.exists(f"rq:job:notify-{doomed}-1") == 0


def test_one_listener_at_a_time_enqueues(configure, fake_slack, make_escalation, redis_client, outbox_listener):
    configure(**slack_webhook_env(fake_slack))
    first = outbox_listener()
    second = OutboxListener()
    second.start()
    try:
        assert not second.listening.wait(1.0), "a second listener must wait for the advisory lock"
        first.stop()
        first.join(5)
        assert second.listening.wait(listener_module.LOCK_RETRY_SECONDS + 5), "the second takes over"
        row = Notification.objects.get(escalation=make_escalation("high")).pk
        wait_for(lambda: redis_client.exists(f"rq:job:notify-{row}-1") == 1, timeout=10, message="taken over")
    finally:
        second.stop()
        second.join(5)


def test_redis_down_leaves_the_row_for_the_sweep(configure, fake_slack, make_escalation, settings, caplog,
                                                 outbox_listener):  # fmt: skip
    configure(**slack_webhook_env(fake_slack))
    settings.RQ_QUEUES = {**settings.RQ_QUEUES, "notifications": {"URL": "redis://127.0.0.1:9/0"}}
    outbox_listener()

    with caplog.at_level(logging.WARNING, logger="safety_admin.notifications.listener"):
        escalation = make_escalation("high")
        wait_for(lambda: any("sweep will retry" in r.getMessage() for r in caplog.records), timeout=10,
                 message="the failed enqueue is logged")  # fmt: skip

    assert Notification.objects.get(escalation=escalation).status == "pending"
