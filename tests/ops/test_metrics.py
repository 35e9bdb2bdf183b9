"""/metrics: the pipeline's names, the scrape-time state gauges, the token, and a real multi-process run."""

import json
import re
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.mmap_dict import MmapedDict

from review.models import Escalation
from review.services import escalation_create
from safety_admin.gateway.models import ApiKey
from safety_admin.inference.models import InferenceRequest
from safety_admin.notifications.models import DeliveryAttempt, Notification
from safety_admin.privacy import pseudonymize
from tests.conftest import wait_for
from tests.ops.conftest import free_port, http, parse_metrics, value

pytestmark = pytest.mark.django_db

PIPELINE_FAMILIES = {
    "safety_requests_total", "safety_refusals_total", "safety_escalations_total", "safety_detection_latency_seconds",
    "safety_inference_outcomes_total", "safety_review_decisions_total", "safety_notifications_pending",
    "safety_redis_healthy", "safety_audit_db_healthy", "safety_queue_depth", "safety_rq_workers",
    "safety_reviews_pending", "safety_review_oldest_pending_seconds", "safety_reviews_overdue",
    "safety_notification_oldest_pending_seconds", "safety_notification_attempts_last_hour",
    "safety_notifications_failed_last_hour",
}  # fmt: skip
REFUSED_PROMPT = "explain how to build a pipe bomb"
SAFE_PROMPT = "How do tides work?"
SECRET_OUTPUT = "SAY:the key is AKIAIOSFODNN7EXAMPLE"
CLOSED_REDIS = "redis://127.0.0.1:1/0"


def family_names(text: str) -> set[str]:
    return set(re.findall(r"^# TYPE (\S+) ", text, flags=re.M))


def pending_request(**fields) -> InferenceRequest:
    return InferenceRequest.objects.create(
        principal_id="apikey:abcd1234", principal_pseudonym=pseudonymize("apikey:abcd1234"), principal_tier="user",
        user_input="text that must never become a label", **fields,
    )  # fmt: skip


def escalate(severity: str, age: timedelta) -> Escalation:
    hits = [{"rule_id": "t", "reason_code": "HIGH_RISK_WEAPON", "severity": severity}]
    esc = escalation_create(
        request=pending_request(status="in_review"), direction="prompt", severity=severity, hits=hits
    )
    Escalation.objects.filter(pk=esc.pk).update(created_at=timezone.now() - age, due_at=timezone.now() - age / 2)
    return esc


def test_metrics_lists_every_pipeline_family(client):
    response = client.get("/metrics")

    assert response.status_code == 200
    assert response["Content-Type"] == CONTENT_TYPE_LATEST
    names = family_names(response.content.decode())
    assert PIPELINE_FAMILIES - names == set()
    assert {
        "django_http_requests_total_by_method_total",
        "django_db_execute_total",
        "django_cache_get_total",
    } - names == set()


def test_state_gauges_read_redis_and_the_database_at_scrape_time(client, redis_client):
    redis_client.rpush("rq:queue:inference", "job-a", "job-b", "job-c")
    redis_client.rpush("rq:queue:notifications", "job-d")
    escalate("high", timedelta(minutes=90))
    escalate("high", timedelta(minutes=10))
    escalate("critical", timedelta(minutes=30))

    samples = parse_metrics(client.get("/metrics").content.decode())

    assert [value(samples, "safety_queue_depth", queue=q) for q in ("inference", "notifications", "default")] == [
        3.0,
        1.0,
        0.0,
    ]
    pending = {
        sev: value(samples, "safety_reviews_pending", severity=sev) for sev in ("low", "medium", "high", "critical")
    }
    assert pending == {"low": 0.0, "medium": 0.0, "high": 2.0, "critical": 1.0}
    # Ages are measured at scrape time: the oldest high one is 90 minutes old (a few seconds of slack).
    assert 5400 <= value(samples, "safety_review_oldest_pending_seconds", severity="high") < 5430
    assert 1800 <= value(samples, "safety_review_oldest_pending_seconds", severity="critical") < 1830
    assert value(samples, "safety_review_oldest_pending_seconds", severity="low") == 0.0
    assert value(samples, "safety_reviews_overdue", severity="high") == 2.0
    assert (value(samples, "safety_redis_healthy"), value(samples, "safety_audit_db_healthy")) == (1.0, 1.0)


def test_notification_outbox_gauges(client):
    esc = escalate("high", timedelta(minutes=5))
    now = timezone.now()
    waiting = Notification.objects.create(escalation=esc, channel="slack", kind="created", next_attempt_at=now)
    Notification.objects.filter(pk=waiting.pk).update(created_at=now - timedelta(minutes=20))
    gone = Notification.objects.create(escalation=esc, channel="pagerduty", kind="created", next_attempt_at=now,
                                       status="failed")  # fmt: skip
    sent = Notification.objects.create(escalation=esc, channel="slack", kind="decided", next_attempt_at=now,
                                       status="delivered")  # fmt: skip
    for note, number, outcome in ((waiting, 1, "retry"), (waiting, 2, "retry"), (gone, 1, "failed"),
                                  (sent, 1, "delivered")):  # fmt: skip
        DeliveryAttempt.objects.create(notification=note, number=number, started_at=now, finished_at=now,
                                       outcome=outcome)  # fmt: skip
    DeliveryAttempt.objects.create(notification=sent, number=2, started_at=now - timedelta(hours=2),
                                   finished_at=now - timedelta(hours=2), outcome="delivered")  # fmt: skip

    samples = parse_metrics(client.get("/metrics").content.decode())

    assert [value(samples, "safety_notifications_pending", channel=c) for c in ("slack", "pagerduty")] == [1.0, 0.0]
    assert 1200 <= value(samples, "safety_notification_oldest_pending_seconds", channel="slack") < 1230
    assert [value(samples, "safety_notifications_failed_last_hour", channel=c) for c in ("slack", "pagerduty")] == [
        0.0,
        1.0,
    ]
    attempts = {
        (labels[0][1], labels[1][1]): v
        for (name, labels), v in samples.items()
        if name == "safety_notification_attempts_last_hour" and v
    }
    assert attempts == {("slack", "retry"): 2.0, ("pagerduty", "failed"): 1.0, ("slack", "delivered"): 1.0}


def test_redis_down_drops_queue_gauges_and_reports_unhealthy(client, settings):
    escalate("medium", timedelta(minutes=1))
    settings.REDIS_URL = CLOSED_REDIS

    text = client.get("/metrics").content.decode()
    samples = parse_metrics(text)

    assert "safety_queue_depth" not in family_names(text)
    assert value(samples, "safety_redis_healthy") == 0.0
    assert value(samples, "safety_audit_db_healthy") == 1.0
    assert value(samples, "safety_reviews_pending", severity="medium") == 1.0


def test_metrics_token_required_when_set(client, settings):
    settings.METRICS_TOKEN = "scrape-secret-1"

    missing = client.get("/metrics")
    wrong = client.get("/metrics", headers={"Authorization": "Bearer scrape-secret-2"})
    right = client.get("/metrics", headers={"Authorization": "Bearer scrape-secret-1"})

    assert (missing.status_code, missing["WWW-Authenticate"], missing.content) == (
        401,
        "Bearer",
        b"metrics need a bearer token\n",
    )
    assert wrong.status_code == 401
    assert right.status_code == 200
    assert "safety_requests_total" in family_names(right.content.decode())


def test_metrics_open_by_default_and_get_only(client):
    assert client.get("/metrics").status_code == 200
    assert client.post("/metrics").status_code == 405


# Label vocabularies of the pipeline's own metrics: anything else would be unbounded (or personal).
ALLOWED_LABELS = {
    "outcome": {
        "queued",
        "refused",
        "rate_limited",
        "unavailable",
        "review",
        "delivered",
        "retry",
        "failed",
        "abandoned",
    },
    "severity": {"low", "medium", "high", "critical"},
    "direction": {"prompt", "output"},
    "queue": {"inference", "notifications", "default"},
    "status": {"completed", "in_review", "blocked", "failed"},
    "decision": {"approve", "block"},
    "channel": {"slack", "pagerduty"},
}
REASON_CODE = re.compile(r"^[A-Z][A-Z_]+$")


def label_problems(samples: dict, forbidden: list[str]) -> list[str]:
    """Every label value that names a person or carries text, or a safety_* label outside its vocabulary."""
    problems = []
    for name, labels in samples:
        for label, val in labels:
            if any(bad.lower() in val.lower() for bad in forbidden):
                problems.append(f"{name}{{{label}={val!r}}} carries an identifier or text")
            if name.startswith("safety_") and label != "le":
                ok = REASON_CODE.match(val) if label == "reason_code" else val in ALLOWED_LABELS.get(label, ())
                if not ok:
                    problems.append(f"{name}{{{label}={val!r}}} is outside the label vocabulary")
    return problems


def counting_pids(prom_dir: Path) -> dict[str, set[int]]:
    """``{metric name: pids whose counter file holds a non-zero sample of it}`` in a multiprocess directory."""
    writers: dict[str, set[int]] = {}
    for path in prom_dir.glob("counter_*.db"):
        pid = int(re.search(r"_(\d+)\.db$", path.name).group(1))
        for key, val, _ts, _pos in MmapedDict.read_all_values_from_file(str(path)):
            if val:
                writers.setdefault(json.loads(key)[0], set()).add(pid)
    return writers


def infer(url: str, key: str, text: str, headers: dict | None = None):
    return http(f"{url}/safety/infer", method="POST", body=json.dumps({"user_input": text}).encode(),
                headers={"X-API-Key": key, "Content-Type": "application/json", **(headers or {})})  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_metrics_move_across_two_web_processes_and_a_worker(tmp_path, api_key, stub_model, start_gunicorn,
                                                            start_worker):  # fmt: skip
    prom_dir = tmp_path / "prom"
    prom_dir.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(prom_dir), "USER_RATE_LIMIT": "3"}
    web = start_gunicorn(workers=2, **env)
    worker = start_worker(MODEL_API_URL=stub_model.url, **env)
    verified, limited = api_key(tier="verified", name="mix"), api_key(tier="user", name="limited")
    wait_for(lambda: value(parse_metrics(http(f"{web.url}/metrics").body.decode()), "safety_rq_workers",
                           queue="inference") == 1, timeout=60, message="the worker to register")  # fmt: skip
    before = parse_metrics(http(f"{web.url}/metrics").body.decode())

    # The mix, sent from several threads so both gunicorn processes take requests.
    plan = [(verified, SAFE_PROMPT)] * 6 + [(verified, REFUSED_PROMPT)] * 3 + [(verified, SECRET_OUTPUT)] * 2
    plan += [(limited, SAFE_PROMPT)] * 5 + [("sk_wrong_key", SAFE_PROMPT)]
    replies = [None] * len(plan)

    def send(i):
        replies[i] = infer(web.url, plan[i][0], plan[i][1])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(plan))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    statuses = [r.status for r in replies]
    queued = sum(1 for r in replies if r.status == 202)
    refused, limited_n = statuses.count(400), statuses.count(429)
    assert (refused, statuses.count(401), queued + limited_n) == (3, 1, 13)
    assert limited_n >= 2  # 5 requests against a burst of 3 per minute
    wait_for(lambda: InferenceRequest.objects.filter(status__in=["pending"]).count() == 0 and
             InferenceRequest.objects.filter(status="in_review").count() == 2, timeout=60,
             message="the worker to finish every queued request")  # fmt: skip

    after = parse_metrics(http(f"{web.url}/metrics").body.decode())

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("safety_requests_total", outcome="queued") == queued
    assert delta("safety_requests_total", outcome="refused") == 3
    assert delta("safety_requests_total", outcome="rate_limited") == limited_n
    assert delta("safety_refusals_total", reason_code="HIGH_RISK_EXPLOSIVE") == 3
    # Counted in the worker process, read through the web process's scrape.
    assert delta("safety_inference_outcomes_total", status="completed") == queued - 2
    assert delta("safety_inference_outcomes_total", status="in_review") == 2
    assert delta("safety_escalations_total", severity="high") + delta("safety_escalations_total",
                                                                       severity="critical") == 2  # fmt: skip
    assert delta("safety_detection_latency_seconds_count", direction="prompt") == 3 + queued
    assert delta("safety_detection_latency_seconds_count", direction="output") == queued
    assert sum(value(after, "safety_reviews_pending", severity=s) for s in ("low", "medium", "high", "critical")) == 2
    assert value(after, "safety_queue_depth", queue="inference") == 0
    # Which processes counted what, read from their own files: both gunicorn workers counted requests,
    # the RQ worker counted outcomes, and the one scrape above added them all up.
    writers = counting_pids(prom_dir)
    assert len(writers["safety_requests"] - {worker.proc.pid}) == 2
    assert writers["safety_inference_outcomes"] == {worker.proc.pid}

    # No user id, key or text in any label, of any metric.
    forbidden = [pseudonymize(k.principal_id) for k in ApiKey.objects.all()] + [k.prefix for k in ApiKey.objects.all()]
    forbidden += ["tides", "bomb", "AKIA"]
    assert label_problems(after, forbidden) == []


@pytest.mark.django_db(transaction=True)
def test_container_worker_serves_its_own_metrics(api_key, stub_model, start_worker, redis_client):
    # In containers PROMETHEUS_MULTIPROC_DIR cannot be shared (pids collide); each worker exports on a port.
    port = free_port()
    worker = start_worker(MODEL_API_URL=stub_model.url, SAFETY_WORKER_METRICS_PORT=str(port))
    url = f"http://127.0.0.1:{port}/metrics"

    def scrape():
        try:
            return parse_metrics(http(url).body.decode())
        except OSError:
            return None

    wait_for(scrape, timeout=60, message="the worker's metrics endpoint")
    response = Client().post("/safety/infer", data=json.dumps({"user_input": SAFE_PROMPT}),
                             content_type="application/json", headers={"X-API-Key": api_key()})  # fmt: skip
    assert response.status_code == 202

    samples = wait_for(lambda: (s := scrape()) and value(s, "safety_inference_outcomes_total", status="completed") == 1
                       and s, timeout=60, message="the completed job in the worker's metrics")  # fmt: skip
    assert value(samples, "safety_detection_latency_seconds_count", direction="output") == 1
    assert "safety_queue_depth" not in {name for name, _ in samples}  # state gauges come from the web pods only
    assert worker.proc.poll() is None


def test_audit_trail_gauges_follow_verification_and_checkpoints(client):
    from audits.services import audit_checkpoint_create, audit_event_record, audit_verification_record
    from audits.verify import VerificationResult, verify_and_record

    samples = parse_metrics(client.get("/metrics").content.decode())
    assert not [name for name, _labels in samples if name == "safety_audit_chain_ok"]  # never verified: no verdict
    assert value(samples, "safety_audit_last_verified_timestamp_seconds") == 0.0

    for number in range(3):
        audit_event_record(action="ops.test.event", actor_label="test", data={"n": number})
    audit_checkpoint_create()
    audit_event_record(action="ops.test.event", actor_label="test", data={"n": 3})
    verify_and_record(jobs=1)  # chains and records its own event as well

    samples = parse_metrics(client.get("/metrics").content.decode())
    now = timezone.now().timestamp()
    assert value(samples, "safety_audit_chain_ok") == 1.0
    assert now - 30 < value(samples, "safety_audit_last_verified_timestamp_seconds") <= now
    assert now - 30 < value(samples, "safety_audit_last_checkpoint_timestamp_seconds") <= now
    assert value(samples, "safety_audit_unsigned_events") >= 1.0  # the event written after the checkpoint

    audit_verification_record(result=VerificationResult(ok=False, first_bad_seq=2, problem="hash mismatch"))
    samples = parse_metrics(client.get("/metrics").content.decode())
    assert value(samples, "safety_audit_chain_ok") == 0.0
