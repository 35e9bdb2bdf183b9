"""Outbox services called directly, against loopback Slack and PagerDuty fakes and the real Redis."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from rq.job import Job, JobStatus

from audits.models import AuditEvent
from review.services import escalation_decide
from safety_admin.notifications import services
from safety_admin.notifications.models import AttemptOutcome, DeliveryAttempt, Notification
from tests.notifications.conftest import (
    SLACK_CHANNEL_ID,
    decoded,
    pagerduty_env,
    slack_bot_env,
    slack_webhook_env,
)
from tests.stubs import Reply

pytestmark = pytest.mark.django_db


def rows(escalation) -> list[tuple[str, str, str]]:
    return list(
        Notification.objects.filter(escalation=escalation).order_by("id").values_list("channel", "kind", "status")
    )


def deliver(row_or_id) -> str:
    return services.notification_deliver(notification_id=getattr(row_or_id, "pk", row_or_id))


def make_due(row) -> None:
    """Stand in for the passing of time: the scheduled retry is due now."""
    Notification.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))


def audit_tuples(action_prefix: str = "notifications.") -> list[tuple]:
    return list(AuditEvent.objects.filter(action__startswith=action_prefix).order_by("id").values_list(
        "action", "actor_label", "subject_type", "subject_id"))  # fmt: skip


def test_outbox_rows_follow_configuration_and_minimum_severity(configure, fake_slack, fake_pagerduty, make_escalation):
    configure(**slack_webhook_env(fake_slack), **pagerduty_env(fake_pagerduty))

    low, medium, high = make_escalation("low"), make_escalation("medium"), make_escalation("critical")

    assert rows(low) == []
    assert rows(medium) == [("slack", "created", "pending")]
    assert rows(high) == [("slack", "created", "pending"), ("pagerduty", "created", "pending")]


def test_nothing_configured_writes_no_rows(configure, make_escalation):
    escalation = make_escalation("critical")

    assert Notification.objects.filter(escalation=escalation).count() == 0


def test_minimum_severity_settings_apply(configure, fake_slack, fake_pagerduty, make_escalation):
    configure(**slack_webhook_env(fake_slack), **pagerduty_env(fake_pagerduty),
              SLACK_MIN_SEVERITY="critical", PAGERDUTY_MIN_SEVERITY="critical")  # fmt: skip

    assert rows(make_escalation("high")) == []
    assert rows(make_escalation("critical")) == [("slack", "created", "pending"), ("pagerduty", "created", "pending")]


def test_slack_webhook_delivery_writes_log_and_audit(configure, fake_slack, make_escalation):
    configure(**slack_webhook_env(fake_slack))
    escalation = make_escalation("high", reason_code="HIGH_RISK_BIO")
    row = Notification.objects.get(escalation=escalation)

    outcome = deliver(row)

    assert outcome == "delivered"
    assert len(fake_slack.webhook_posts) == 1
    post = fake_slack.webhook_posts[0]
    assert post["text"] == f"HIGH escalation #{escalation.pk} (prompt): HIGH_RISK_BIO"
    url = "https://safety.example.test" + reverse("review:escalation-detail", args=[escalation.pk])
    assert post["blocks"][-1]["elements"][0]["url"] == url
    fields = [f["text"] for f in post["blocks"][1]["fields"]]
    assert fields[0] == "*Severity*\nhigh"
    assert fields[1] == "*Reason codes*\nHIGH_RISK_BIO"
    assert fields[2].startswith(f"*Age*\n<!date^{int(escalation.created_at.timestamp())}^{{ago}}|")
    row.refresh_from_db()
    assert (row.status, row.attempts, row.lease_expires_at, row.last_error) == ("delivered", 1, None, "")
    log = list(DeliveryAttempt.objects.filter(notification=row).values_list("number", "outcome", "detail"))
    assert log == [(1, "delivered", "slack webhook posted")]
    assert audit_tuples() == [
        ("notifications.notification.delivered", "notifications", "notifications.notification", str(row.pk))
    ]
    event = AuditEvent.objects.get(action="notifications.notification.delivered")
    assert (event.request_id, event.trace_id) == (str(escalation.request_id), "trace-notify")
    assert event.data == {"channel": "slack", "kind": "created", "escalation_id": escalation.pk, "attempts": 1,
                          "external_ref": ""}  # fmt: skip


def test_a_second_run_of_the_same_job_sends_nothing(configure, fake_slack, make_escalation):
    configure(**slack_webhook_env(fake_slack))
    row = Notification.objects.get(escalation=make_escalation("high"))

    assert deliver(row) == "delivered"
    assert deliver(row) == "delivered"

    assert len(fake_slack.webhook_posts) == 1


def test_excerpt_is_short_escaped_and_flattened(configure, fake_slack, make_escalation):
    configure(**slack_webhook_env(fake_slack), SLACK_EXCERPT_CHARS=40)
    user_input = "hey <!channel> <@U123>  &\n\n see <https://evil.example|here> " + "x" * 200
    row = Notification.objects.get(escalation=make_escalation("high", user_input=user_input))

    deliver(row)

    quote = fake_slack.webhook_posts[0]["blocks"][2]["text"]
    assert quote == {"type": "mrkdwn", "verbatim": True,
                     "text": "> hey &lt;!channel&gt; &lt;@U123&gt; &amp; see &lt;https://e…"}  # fmt: skip


def test_no_user_content_when_excerpts_are_off(configure, fake_slack, fake_pagerduty, make_escalation):
    configure(**slack_webhook_env(fake_slack), **pagerduty_env(fake_pagerduty), SLACK_INCLUDE_EXCERPT=False)
    escalation = make_escalation("critical", user_input="SECRET-MARKER-7731 please help")

    for row in Notification.objects.filter(escalation=escalation):
        assert deliver(row) == "delivered"

    assert len(fake_slack.requests) == 1
    assert len(fake_pagerduty.requests) == 1
    for rec in fake_slack.requests + fake_pagerduty.requests:
        assert b"SECRET-MARKER" not in rec.body
        assert b"please help" not in rec.body
    assert [b["type"] for b in fake_slack.webhook_posts[0]["blocks"]] == ["section", "section", "actions"]


def test_pagerduty_never_gets_user_content_even_with_excerpts_on(configure, fake_pagerduty, make_escalation):
    configure(**pagerduty_env(fake_pagerduty))
    escalation = make_escalation("critical", user_input="SECRET-MARKER-7731")

    deliver(Notification.objects.get(escalation=escalation))

    assert b"SECRET-MARKER" not in fake_pagerduty.requests[0].body


def test_pagerduty_trigger_then_resolve_on_decision(configure, fake_pagerduty, make_escalation):
    configure(**pagerduty_env(fake_pagerduty))
    escalation = make_escalation("high", reason_code="HIGH_RISK_CHEM")
    first = Notification.objects.get(escalation=escalation)

    assert deliver(first) == "delivered"
    escalation_decide(escalation_id=escalation.pk, decision="block", tier="privileged", actor_label="alice",
                      note="nope")  # fmt: skip
    second = Notification.objects.get(escalation=escalation, kind="decided")
    assert deliver(second) == "delivered"

    trigger, resolve = (decoded(r) for r in fake_pagerduty.requests)
    key = f"escalation-{escalation.pk}"
    url = "https://safety.example.test" + reverse("review:escalation-detail", args=[escalation.pk])
    assert trigger["event_action"] == "trigger"
    assert trigger["dedup_key"] == key
    assert trigger["routing_key"] == "R0UTINGKEY"
    assert trigger["payload"]["severity"] == "error"
    assert trigger["payload"]["summary"] == f"Safety escalation #{escalation.pk}: high HIGH_RISK_CHEM (prompt)"
    assert trigger["payload"]["source"] == "safety.example.test"
    assert trigger["payload"]["custom_details"] == {
        "escalation_id": escalation.pk, "request_id": str(escalation.request_id), "severity": "high",
        "reason_codes": ["HIGH_RISK_CHEM"], "direction": "prompt", "due_at": escalation.due_at.isoformat(),
        "url": url,
    }  # fmt: skip
    assert trigger["links"] == [{"href": url, "text": f"Open escalation #{escalation.pk}"}]
    assert resolve == {"routing_key": "R0UTINGKEY", "event_action": "resolve", "dedup_key": key}
    assert fake_pagerduty.incidents == {key: "resolved"}
    first.refresh_from_db()
    assert first.external_ref == key


def test_critical_maps_to_pagerduty_critical(configure, fake_pagerduty, make_escalation):
    configure(**pagerduty_env(fake_pagerduty))

    deliver(Notification.objects.get(escalation=make_escalation("critical")))

    assert decoded(fake_pagerduty.requests[0])["payload"]["severity"] == "critical"


def test_slack_bot_posts_then_updates_in_place_on_decision(configure, fake_slack, make_escalation):
    configure(**slack_bot_env(fake_slack))
    escalation = make_escalation("high")
    first = Notification.objects.get(escalation=escalation)

    assert deliver(first) == "delivered"
    escalation_decide(escalation_id=escalation.pk, decision="approve", tier="privileged", actor_label="alice",
                      note="fine")  # fmt: skip
    second = Notification.objects.get(escalation=escalation, kind="decided")
    assert deliver(second) == "delivered"

    paths = [r.path for r in fake_slack.requests]
    assert paths == ["/api/chat.postMessage", "/api/chat.update"]
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.external_channel, first.external_ref) == (SLACK_CHANNEL_ID, "1700000000.000001")
    assert (second.external_channel, second.external_ref) == (SLACK_CHANNEL_ID, "1700000000.000001")
    assert len(fake_slack.messages) == 1
    update = fake_slack.messages["1700000000.000001"]
    assert update["text"] == f"HIGH escalation #{escalation.pk} (prompt): HIGH_RISK_WEAPON — approved"
    decision_block = update["blocks"][-2]["text"]["text"]
    assert decision_block.startswith(":white_check_mark: *Approved* by alice at ")
    assert decoded(fake_slack.requests[0])["metadata"] == {
        "event_type": "safety_admin_notification",
        "event_payload": {"key": f"notification-{first.pk}"},
    }
    assert DeliveryAttempt.objects.get(notification=second).detail == "slack bot updated"


def test_slack_webhook_decision_is_a_follow_up_message(configure, fake_slack, make_escalation):
    configure(**slack_webhook_env(fake_slack))
    escalation = make_escalation("high")
    deliver(Notification.objects.get(escalation=escalation))
    escalation_decide(escalation_id=escalation.pk, decision="block", tier="privileged", actor_label="bob",
                      note="no")  # fmt: skip

    deliver(Notification.objects.get(escalation=escalation, kind="decided"))

    assert len(fake_slack.webhook_posts) == 2
    assert fake_slack.webhook_posts[1]["text"] == f"Escalation #{escalation.pk} blocked by bob"


def test_decision_waits_for_the_first_message(configure, fake_pagerduty, make_escalation, redis_client,
                                              django_capture_on_commit_callbacks):  # fmt: skip
    configure(**pagerduty_env(fake_pagerduty))
    escalation = make_escalation("high")
    first = Notification.objects.get(escalation=escalation)
    with django_capture_on_commit_callbacks(execute=True):
        escalation_decide(escalation_id=escalation.pk, decision="approve", tier="privileged", actor_label="alice",
                          note="ok")  # fmt: skip
    second = Notification.objects.get(escalation=escalation, kind="decided")

    assert deliver(second) == "waiting"
    assert fake_pagerduty.requests == []
    with django_capture_on_commit_callbacks(execute=True):
        assert deliver(first) == "delivered"  # ... and starts the resolve when it finishes

    job = Job.fetch(f"notify-{second.pk}-1", connection=redis_client)
    assert (job.get_status(), job.args) == (JobStatus.QUEUED, (second.pk,))
    assert deliver(second) == "delivered"
    assert [decoded(r)["event_action"] for r in fake_pagerduty.requests] == ["trigger", "resolve"]


def test_server_error_is_retried_with_backoff(configure, fake_pagerduty, make_escalation, redis_client,
                                              django_capture_on_commit_callbacks):  # fmt: skip
    configure(**pagerduty_env(fake_pagerduty), NOTIFICATION_RETRY_BASE_SECONDS=4.0)
    row = Notification.objects.get(escalation=make_escalation("critical"))
    fake_pagerduty.fail_next(Reply(503, {"status": "unavailable"}), Reply(502, b"bad gateway"))

    before = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        assert deliver(row) == "retry"
    row.refresh_from_db()
    first_delay = (row.next_attempt_at - before).total_seconds()
    assert 2.0 <= first_delay <= 4.5  # attempt 1: half of 4 s fixed, up to 4 s with jitter
    assert (row.status, row.attempts, row.lease_expires_at, row.last_error) == (
        "pending",
        1,
        None,
        "PagerDuty answered 503",
    )
    scheduled = Job.fetch(f"notify-{row.pk}-2", connection=redis_client)
    assert scheduled.get_status() == JobStatus.SCHEDULED

    assert deliver(row) == "busy"  # not due yet: an early job sends nothing
    make_due(row)
    before = timezone.now()
    assert deliver(row) == "retry"
    row.refresh_from_db()
    assert 4.0 <= (row.next_attempt_at - before).total_seconds() <= 8.5  # attempt 2: 8 s ceiling
    make_due(row)
    assert deliver(row) == "delivered"

    log = list(DeliveryAttempt.objects.filter(notification=row).values_list("number", "outcome", "http_status"))
    assert log == [(1, "retry", 503), (2, "retry", 502), (3, "delivered", None)]
    assert fake_pagerduty.triggers == 1
    assert audit_tuples() == [
        ("notifications.notification.delivered", "notifications", "notifications.notification", str(row.pk))
    ]


def test_429_honours_retry_after(configure, fake_slack, make_escalation):
    configure(**slack_webhook_env(fake_slack))
    row = Notification.objects.get(escalation=make_escalation("high"))
    fake_slack.fail_next(Reply(429, "rate_limited", {"Retry-After": "30", "Content-Type": "text/plain"}))

    before = timezone.now()
    assert deliver(row) == "retry"

    row.refresh_from_db()
    assert 30.0 <= (row.next_attempt_at - before).total_seconds() <= 31.0
    attempt = DeliveryAttempt.objects.get(notification=row)
    assert (attempt.outcome, attempt.http_status, attempt.detail) == (
        "retry",
        429,
        "Slack webhook answered 429: rate_limited",
    )


def test_slack_api_ratelimited_honours_retry_after(configure, fake_slack, make_escalation):
    configure(**slack_bot_env(fake_slack))
    row = Notification.objects.get(escalation=make_escalation("high"))
    fake_slack.fail_next(Reply(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "12"}))

    before = timezone.now()
    assert deliver(row) == "retry"

    row.refresh_from_db()
    assert 12.0 <= (row.next_attempt_at - before).total_seconds() <= 13.0
    assert row.last_error == "Slack API answered 429: ratelimited"


def test_timeout_is_retried(configure, fake_pagerduty, make_escalation):
    configure(**pagerduty_env(fake_pagerduty), NOTIFICATION_READ_TIMEOUT=0.3)
    row = Notification.objects.get(escalation=make_escalation("high"))
    fake_pagerduty.fail_next(Reply(202, delay=2.0))

    assert deliver(row) == "retry"

    row.refresh_from_db()
    assert (row.status, row.last_error) == ("pending", "PagerDuty timed out")


def test_unreachable_receiver_is_retried(configure, make_escalation):
    configure(SLACK_WEBHOOK="http://127.0.0.1:9/services/x")  # the discard port: connection refused
    row = Notification.objects.get(escalation=make_escalation("high"))

    assert deliver(row) == "retry"

    row.refresh_from_db()
    assert row.last_error == "Slack unreachable: ConnectionRefusedError"


def test_bad_routing_key_fails_without_retry(configure, fake_pagerduty, make_escalation, redis_client,
                                             django_capture_on_commit_callbacks):  # fmt: skip
    configure(**{**pagerduty_env(fake_pagerduty), "PAGERDUTY_ROUTING_KEY": "wrong"})
    row = Notification.objects.get(escalation=make_escalation("high"))

    with django_capture_on_commit_callbacks(execute=True):
        assert deliver(row) == "failed"

    row.refresh_from_db()
    reason = "PagerDuty answered 400: 'routing_key' is invalid"
    assert (row.status, row.attempts, row.last_error) == ("failed", 1, reason)
    assert redis_client.exists(f"rq:job:notify-{row.pk}-2") == 0
    assert audit_tuples() == [
        ("notifications.notification.failed", "notifications", "notifications.notification", str(row.pk))
    ]
    event = AuditEvent.objects.get(action="notifications.notification.failed")
    assert event.data == {"channel": "pagerduty", "kind": "created", "escalation_id": row.escalation_id,
                          "attempts": 1, "reason": reason, "http_status": 400}  # fmt: skip


def test_slack_invalid_auth_fails_without_retry(configure, fake_slack, make_escalation):
    configure(**{**slack_bot_env(fake_slack), "SLACK_BOT_TOKEN": "xoxb-revoked"})
    row = Notification.objects.get(escalation=make_escalation("high"))

    assert deliver(row) == "failed"

    row.refresh_from_db()
    assert (row.status, row.last_error) == ("failed", "Slack API answered 200: invalid_auth")


def test_gives_up_after_the_attempt_budget(configure, fake_pagerduty, make_escalation):
    configure(**pagerduty_env(fake_pagerduty), NOTIFICATION_MAX_ATTEMPTS=2)
    row = Notification.objects.get(escalation=make_escalation("high"))
    fake_pagerduty.fail_next(Reply(500), Reply(500))

    assert deliver(row) == "retry"
    make_due(row)
    assert deliver(row) == "failed"

    row.refresh_from_db()
    assert (row.status, row.last_error) == ("failed", "gave up after 2 attempts: PagerDuty answered 500")


def test_gives_up_when_too_old(configure, fake_pagerduty, make_escalation):
    configure(**pagerduty_env(fake_pagerduty), NOTIFICATION_GIVE_UP_SECONDS=3600)
    row = Notification.objects.get(escalation=make_escalation("high"))
    Notification.objects.filter(pk=row.pk).update(created_at=timezone.now() - timedelta(hours=2))
    fake_pagerduty.fail_next(Reply(503))

    assert deliver(row) == "failed"


def test_a_decision_after_a_failed_trigger_still_goes_out(configure, fake_pagerduty, make_escalation):
    configure(**pagerduty_env(fake_pagerduty))
    escalation = make_escalation("high")
    first = Notification.objects.get(escalation=escalation)
    fake_pagerduty.fail_next(Reply(400, {"status": "invalid event"}))
    assert deliver(first) == "failed"
    escalation_decide(escalation_id=escalation.pk, decision="approve", tier="privileged", actor_label="alice",
                      note="ok")  # fmt: skip

    assert deliver(Notification.objects.get(escalation=escalation, kind="decided")) == "delivered"


def test_retry_now_requeues_a_failed_notification(configure, fake_pagerduty, make_escalation, redis_client,
                                                  django_capture_on_commit_callbacks, admin_user):  # fmt: skip
    configure(**pagerduty_env(fake_pagerduty))
    row = Notification.objects.get(escalation=make_escalation("high"))
    fake_pagerduty.fail_next(Reply(403, {"status": "forbidden"}))
    assert deliver(row) == "failed"

    with django_capture_on_commit_callbacks(execute=True):
        count = services.notification_retry_now(notification_ids=[row.pk], actor=admin_user, actor_label="admin")

    assert count == 1
    row.refresh_from_db()
    assert row.status == "pending"
    assert Job.fetch(f"notify-{row.pk}-2", connection=redis_client).get_status() == JobStatus.QUEUED
    assert audit_tuples("notifications.notification.retry") == [
        ("notifications.notification.retry_requested", "admin", "notifications.notification", str(row.pk))
    ]
    assert deliver(row) == "delivered"
    assert services.notification_retry_now(notification_ids=[row.pk], actor=admin_user, actor_label="admin") == 0


def test_sweep_requeues_rows_whose_job_is_gone(configure, fake_slack, make_escalation, redis_client):
    configure(**slack_webhook_env(fake_slack))
    lost = Notification.objects.get(escalation=make_escalation("high"))
    queued = Notification.objects.get(escalation=make_escalation("high"))
    services.notification_enqueue([(queued.pk, 1)])
    later = timezone.now() + timedelta(seconds=5)

    counts = services.notification_sweep(now=later)

    assert counts == {"requeued": 1}
    assert Job.fetch(f"notify-{lost.pk}-1", connection=redis_client).get_status() == JobStatus.QUEUED
    assert services.notification_sweep(now=later) == {"requeued": 0}  # idempotent: now both jobs are queued


def test_sweep_leaves_leased_and_waiting_rows_alone(configure, fake_pagerduty, make_escalation):
    configure(**pagerduty_env(fake_pagerduty))
    escalation = make_escalation("high")
    first = Notification.objects.get(escalation=escalation)
    escalation_decide(escalation_id=escalation.pk, decision="approve", tier="privileged", actor_label="alice",
                      note="ok")  # fmt: skip
    now = timezone.now() + timedelta(seconds=5)
    Notification.objects.filter(pk=first.pk).update(lease_expires_at=now + timedelta(seconds=30))

    assert services.notification_sweep(now=now) == {"requeued": 0}  # trigger in flight, resolve waits for it
    assert services.notification_sweep(now=now + timedelta(seconds=31)) == {"requeued": 1}  # the lease ran out


def test_the_request_path_hands_nothing_to_redis_on_postgresql(configure, fake_slack, make_escalation, redis_client,
                                                                django_capture_on_commit_callbacks):  # fmt: skip
    # The outbox trigger's NOTIFY does it (tests/notifications/test_listener.py); the web process does no Redis work.
    configure(**slack_webhook_env(fake_slack))

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        escalation = make_escalation("critical")

    assert callbacks == [] or all("seal" in getattr(c, "__qualname__", "") for c in callbacks)
    assert rows(escalation) == [("slack", "created", "pending")]
    assert redis_client.llen("rq:queue:notifications") == 0


def test_abandoned_bot_post_is_found_not_posted_again(configure, fake_slack, make_escalation):
    configure(**slack_bot_env(fake_slack), NOTIFICATION_LEASE_SECONDS=0)
    row = Notification.objects.get(escalation=make_escalation("high"))
    # The first attempt reached Slack but its outcome was never recorded (the worker died): replay that state.
    fake_slack.messages["1700000000.000099"] = {"text": "x", "metadata": {
        "event_type": "safety_admin_notification", "event_payload": {"key": f"notification-{row.pk}"}}}  # fmt: skip
    Notification.objects.filter(pk=row.pk).update(attempts=1, lease_expires_at=timezone.now())
    DeliveryAttempt.objects.create(notification=row, number=1, started_at=timezone.now())

    assert deliver(row) == "delivered"

    assert [r.path.split("?")[0] for r in fake_slack.requests] == ["/api/conversations.history"]
    row.refresh_from_db()
    assert (row.external_ref, row.attempts) == ("1700000000.000099", 2)
    log = list(DeliveryAttempt.objects.filter(notification=row).values_list("number", "outcome"))
    assert log == [(1, AttemptOutcome.ABANDONED), (2, AttemptOutcome.DELIVERED)]
