"""The notifications queue through real rqworker processes: delivery, a worker killed mid-send, a Redis restart."""

import socket
import subprocess

import pytest
import redis

from review.services import escalation_decide
from safety_admin.notifications import services
from safety_admin.notifications.models import DeliveryAttempt, Notification
from tests.conftest import wait_for
from tests.notifications.conftest import (
    SLACK_CHANNEL_ID,
    child_pids,
    kill_pids,
    pagerduty_env,
    slack_bot_env,
    slack_webhook_env,
)
from tests.stubs import Reply

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.resilience]

# Sweep every second and retry quickly, so recovery happens within a test's patience.
FAST = {
    "INFERENCE_SWEEP_SECONDS": "1",
    "NOTIFICATION_RETRY_BASE_SECONDS": "0.5",
    "SITE_URL": "https://safety.example.test",
}


def kill_hard(worker) -> None:
    """SIGKILL the worker and its children (the --with-scheduler process), as a crash of the host would."""
    children = child_pids(worker.proc.pid)
    worker.kill()
    kill_pids(children)


def statuses(escalation) -> list[tuple[str, str, str]]:
    return list(
        Notification.objects.filter(escalation=escalation).order_by("id").values_list("channel", "kind", "status")
    )


def all_delivered(escalation, count: int):
    def check():
        found = statuses(escalation)
        return len(found) == count and all(status == "delivered" for _, _, status in found)

    return check


def attempt_log(row) -> list[tuple[int, str]]:
    return list(DeliveryAttempt.objects.filter(notification=row).values_list("number", "outcome"))


def test_worker_delivers_and_follows_the_decision(configure, fake_slack, fake_pagerduty, make_escalation,
                                                  start_worker):  # fmt: skip
    env = {**slack_bot_env(fake_slack), **pagerduty_env(fake_pagerduty)}
    configure(**env)
    worker = start_worker(queues=("notifications",), **env, **FAST)

    escalation = make_escalation("critical")
    wait_for(all_delivered(escalation, 2), timeout=60, message=f"delivery; worker log:\n{worker.output()}")
    escalation_decide(escalation_id=escalation.pk, decision="block", tier="privileged", actor_label="carol",
                      note="no")  # fmt: skip
    wait_for(all_delivered(escalation, 4), timeout=60, message=f"decision delivered; log:\n{worker.output()}")

    key = f"escalation-{escalation.pk}"
    assert fake_pagerduty.incidents == {key: "resolved"}
    assert [r.path for r in fake_slack.requests] == ["/api/chat.postMessage", "/api/chat.update"]
    (message,) = fake_slack.messages.values()
    assert message["blocks"][-2]["text"]["text"].startswith(":no_entry: *Blocked* by carol at ")


def test_worker_killed_between_send_and_mark_does_not_double_the_page(configure, fake_pagerduty, make_escalation,
                                                                      start_worker):  # fmt: skip
    env = {**pagerduty_env(fake_pagerduty), "NOTIFICATION_LEASE_SECONDS": "2"}
    configure(**pagerduty_env(fake_pagerduty))
    fake_pagerduty.fail_next(Reply(202, delay=60))  # PagerDuty takes the event, the answer never arrives in time
    first = start_worker(queues=("notifications",), **env, **FAST)
    escalation = make_escalation("critical")
    wait_for(lambda: fake_pagerduty.requests, timeout=60, message=f"first send; log:\n{first.output()}")

    kill_hard(first)
    second = start_worker(queues=("notifications",), **env, **FAST)
    wait_for(all_delivered(escalation, 1), timeout=60, message=f"second worker's delivery; log:\n{second.output()}")

    events = [r.json() for r in fake_pagerduty.requests]
    assert [(e["event_action"], e["dedup_key"]) for e in events] == [("trigger", f"escalation-{escalation.pk}")] * 2
    assert fake_pagerduty.triggers == 1
    assert attempt_log(Notification.objects.get(escalation=escalation)) == [(1, "abandoned"), (2, "delivered")]


def test_worker_killed_after_a_bot_post_does_not_post_twice(configure, fake_slack, make_escalation, start_worker):
    env = {**slack_bot_env(fake_slack), "NOTIFICATION_LEASE_SECONDS": "2"}
    configure(**slack_bot_env(fake_slack))
    fake_slack.fail_next(Reply(200, delay=60))  # Slack stores the post, the answer never arrives in time
    first = start_worker(queues=("notifications",), **env, **FAST)
    escalation = make_escalation("high")
    wait_for(lambda: fake_slack.messages, timeout=60, message=f"first post; log:\n{first.output()}")

    kill_hard(first)
    second = start_worker(queues=("notifications",), **env, **FAST)
    wait_for(all_delivered(escalation, 1), timeout=60, message=f"second worker's delivery; log:\n{second.output()}")

    assert len(fake_slack.posts()) == 1
    row = Notification.objects.get(escalation=escalation)
    assert (row.external_channel, row.external_ref) == (SLACK_CHANNEL_ID, "1700000000.000001")
    assert attempt_log(row) == [(1, "abandoned"), (2, "delivered")]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateRedis:
    """A throwaway redis-server without persistence: stopping it loses every queued job."""

    def __init__(self):
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)

        def answers():
            try:
                return client.ping()
            except redis.RedisError:
                return False

        wait_for(answers, timeout=20, message="private redis-server")
        client.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def private_redis():
    server = PrivateRedis()
    server.start()
    yield server
    server.stop()


def test_sweep_recovers_jobs_lost_in_a_redis_restart(private_redis, configure, fake_slack, make_escalation,
                                                     start_worker, settings):  # fmt: skip
    # private_redis comes first so that it outlives the worker at teardown.
    env = slack_webhook_env(fake_slack)
    configure(**env)
    settings.RQ_QUEUES = {**settings.RQ_QUEUES, "notifications": {"URL": private_redis.url}}
    queued = make_escalation("high")
    # What a worker's outbox listener does on the trigger's NOTIFY: the job waits in Redis, no worker yet.
    services.notification_enqueue([(Notification.objects.get(escalation=queued).pk, 1)])
    assert redis.Redis.from_url(private_redis.url).llen("rq:queue:notifications") == 1

    private_redis.stop()
    during_outage = make_escalation("high")  # nobody could enqueue it; the escalation must still be committed
    private_redis.start()  # empty: the first job is gone too
    worker = start_worker(queues=("notifications",), **env, **FAST, REDIS_URL=private_redis.url)

    wait_for(lambda: all_delivered(queued, 1)() and all_delivered(during_outage, 1)(), timeout=60,
             message=f"both notifications delivered after the restart; log:\n{worker.output()}")  # fmt: skip
    assert sorted(p["text"] for p in fake_slack.webhook_posts) == sorted(
        f"HIGH escalation #{e.pk} (prompt): HIGH_RISK_WEAPON" for e in (queued, during_outage)
    )
