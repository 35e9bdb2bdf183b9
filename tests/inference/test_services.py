"""Inference services and jobs called directly: outcomes, idempotent re-runs, the sweep."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone
from redis.exceptions import ConnectionError as RedisConnectionError

from audits.models import AuditEvent
from safety_admin.gateway import errors
from safety_admin.inference import jobs, services
from safety_admin.inference.models import InferenceRequest
from tests.stubs import Reply

pytestmark = pytest.mark.django_db


def queued(client, key, text="How do tides work?"):
    response = client.post(
        "/safety/infer",
        data=json.dumps({"user_input": text}),
        content_type="application/json",
        headers={"X-API-Key": key},
    )
    assert response.status_code == 202
    return InferenceRequest.objects.get(pk=response.json()["request_id"])


def test_job_completes_once_and_a_second_run_changes_nothing(client, api_key, stub_model, settings):
    settings.MODEL_API_URL = stub_model.url
    req = queued(client, api_key())
    assert jobs.inference_run(str(req.pk), "t-1") == "completed"
    assert jobs.inference_run(str(req.pk), "t-1") is None
    req.refresh_from_db()
    assert (req.status, req.response, req.attempts) == ("completed", "echo: How do tides work?", 1)
    assert len(stub_model.requests) == 1
    assert list(AuditEvent.objects.filter(request_id=str(req.pk)).values_list("action", flat=True).order_by("id")) == [
        "gateway.request.accepted",
        "inference.request.completed",
    ]


def test_job_for_a_vanished_request_returns_quietly(db):
    assert jobs.inference_run("00000000-0000-0000-0000-000000000000") is None


def test_demo_model_is_used_and_labelled_when_no_model_url(client, api_key, settings):
    settings.MODEL_API_URL = ""
    req = queued(client, api_key(), "What is a haiku?")
    jobs.inference_run(str(req.pk))
    req.refresh_from_db()
    assert req.response.startswith("[demo model] ")
    assert req.response == jobs.model_complete([{"role": "user", "content": "What is a haiku?"}]).text


def test_unreachable_model_on_last_attempt_fails_with_reason(client, api_key, settings):
    settings.MODEL_API_URL = "http://127.0.0.1:9"  # discard port: nothing listens
    req = queued(client, api_key())
    assert jobs.inference_run(str(req.pk)) == "failed"
    req.refresh_from_db()
    assert (req.status, req.failure_reason) == ("failed", "model API unreachable: ConnectionRefusedError")


def test_model_timeout_is_a_failure_with_reason(client, api_key, stub_model, settings):
    stub_model.handler = lambda rec: Reply(delay=1.5, body={})
    settings.MODEL_API_URL = stub_model.url
    settings.MODEL_READ_TIMEOUT = 0.3
    req = queued(client, api_key())
    assert jobs.inference_run(str(req.pk)) == "failed"
    req.refresh_from_db()
    assert req.failure_reason == "model API timed out"


def test_garbage_answer_fails_with_reason(client, api_key, stub_model, settings):
    stub_model.handler = lambda rec: Reply(body=b"<html>not json</html>")
    settings.MODEL_API_URL = stub_model.url
    req = queued(client, api_key())
    jobs.inference_run(str(req.pk))
    req.refresh_from_db()
    assert (req.status, req.failure_reason) == ("failed", "model API returned an unreadable answer")


def test_answer_over_the_byte_cap_is_never_stored(client, api_key, stub_model, settings):
    stub_model.handler = lambda rec: Reply(body={"choices": [{"message": {"content": "y" * 200_000}}]})
    settings.MODEL_API_URL = stub_model.url
    settings.MODEL_MAX_RESPONSE_BYTES = 50_000
    req = queued(client, api_key())
    jobs.inference_run(str(req.pk))
    req.refresh_from_db()
    assert (req.status, req.response, req.failure_reason) == (
        "failed",
        "",
        "model answer larger than MODEL_MAX_RESPONSE_BYTES",
    )


def test_enqueue_failure_after_commit_is_503_and_the_sweep_picks_it_up(client, api_key, monkeypatch, redis_client):
    key = api_key()

    # Redis failing exactly between the commit and the enqueue cannot be timed with a real outage,
    # so this one boundary is replaced; the row and the sweep below are real.
    def refuse(*args, **kwargs):
        raise RedisConnectionError("connection refused")

    with monkeypatch.context() as patch:
        patch.setattr(services, "inference_enqueue", refuse)
        response = client.post(
            "/safety/infer",
            data=json.dumps({"user_input": "hello"}),
            content_type="application/json",
            headers={"X-API-Key": key},
        )
    assert response.status_code == 503
    assert response.json()["error"] == errors.SAFETY_UNAVAILABLE
    req = InferenceRequest.objects.get()
    assert (req.status, redis_client.llen("rq:queue:inference")) == ("pending", 0)
    counts = services.inference_sweep(now=timezone.now() + timedelta(minutes=5))
    assert counts == {"requeued": 1, "failed": 0}
    assert redis_client.lrange("rq:queue:inference", 0, -1) == [f"infer-{req.pk}".encode()]


def test_sweep_leaves_live_jobs_alone_and_requeues_stale_ones(client, api_key, redis_client, settings):
    req = queued(client, api_key())
    later = timezone.now() + timedelta(seconds=settings.INFERENCE_SWEEP_SECONDS + 5)
    assert services.inference_sweep(now=later) == {"requeued": 0, "failed": 0}
    # A worker died mid-job: the job hash says "started" but the request has been running past its timeout.
    InferenceRequest.objects.filter(pk=req.pk).update(started_at=timezone.now() - timedelta(hours=1), attempts=1)
    assert services.inference_sweep(now=later) == {"requeued": 1, "failed": 0}
    assert redis_client.llen("rq:queue:inference") == 1


def test_sweep_fails_requests_that_keep_dying(client, api_key, redis_client, settings):
    req = queued(client, api_key())
    redis_client.flushdb()
    InferenceRequest.objects.filter(pk=req.pk).update(attempts=settings.INFERENCE_RETRIES + 2)
    later = timezone.now() + timedelta(minutes=5)
    assert services.inference_sweep(now=later) == {"requeued": 0, "failed": 1}
    req.refresh_from_db()
    assert (req.status, req.failure_reason) == (
        "failed",
        services.MAX_ATTEMPTS_NOTE.format(n=settings.INFERENCE_RETRIES + 2),
    )
    assert AuditEvent.objects.filter(request_id=str(req.pk), action="inference.request.failed").count() == 1
