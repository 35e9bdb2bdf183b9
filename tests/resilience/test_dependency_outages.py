"""Redis and PostgreSQL cut mid-run under a real gunicorn and rqworker: fail closed fast, recover without restarts."""

import time

import pytest

from safety_admin.gateway import errors
from safety_admin.inference.models import InferenceRequest
from tests.conftest import wait_for
from tests.resilience.conftest import (
    FAST_WORKER,
    audit_actions,
    database_url_via,
    infer,
    pct,
    redis_url_via,
    wait_final,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.resilience]

OUTAGE_REQUESTS = 40
FAIL_CLOSED_BUDGET = 1.0  # seconds, per request (issue 10); the design target is p99 <= 250 ms
# A refused connection fails at once whatever the timeout; a roomier Redis timeout than the 0.2 s default keeps
# a loaded 2-core CI machine from turning a slow healthy call into a 503 outside the outage window.
ROOMY = {"SAFETY_REDIS_TIMEOUT": "1.0"}


def _send_and_complete(web, key, stub_model, n: int, label: str) -> list[str]:
    answers = [infer(web.url, key, f"{label} {i}: how do tides work?") for i in range(n)]
    assert [a.status for a in answers] == [202] * n, f"{[a.body for a in answers]}\n{web.output()[-3000:]}"
    ids = [a.json()["request_id"] for a in answers]
    wait_final(ids, timeout=60)
    return ids


def _outage_burst(web, key) -> list:
    answers = [infer(web.url, key, f"during outage {i}") for i in range(OUTAGE_REQUESTS)]
    for answer in answers:
        assert (answer.status, answer.json()) == (
            503,
            {"error": errors.SAFETY_UNAVAILABLE, "detail": errors.MSG_UNAVAILABLE},
        )
    return answers


def _recovery_seconds(web, key) -> float:
    """Seconds from the restore until /safety/infer accepts again (polling, no restarts)."""
    started = time.monotonic()

    def accepted():
        return infer(web.url, key, "are we back?").status == 202

    wait_for(accepted, timeout=30, interval=0.05, message="the gateway to accept again")
    return time.monotonic() - started


def _outage_then_recovery(web, worker, key, stub_model, proxy, label: str, capsys) -> None:
    """Serve, cut ``proxy`` mid-run (fail closed: 503 fast, nothing stored or sent), restore, serve again."""
    before_ids = _send_and_complete(web, key, stub_model, 5, "before")
    rows_before, model_calls_before = InferenceRequest.objects.count(), len(stub_model.requests)

    proxy.cut()
    answers = _outage_burst(web, key)
    time.sleep(1.5)  # let the idle worker meet the outage too (its blocking dequeue or its sweep)
    _outage_burst(web, key)

    # Fail closed: nothing stored, nothing sent to the model.
    assert (InferenceRequest.objects.count(), len(stub_model.requests)) == (rows_before, model_calls_before)
    latencies = [a.elapsed for a in answers]
    assert max(latencies) < FAIL_CLOSED_BUDGET

    proxy.restore()
    recovery = _recovery_seconds(web, key)
    after_ids = _send_and_complete(web, key, stub_model, 5, "after")

    # The same processes served before and after: no restart.
    assert (web.proc.poll(), worker.proc.poll()) == (None, None)
    for request_id in before_ids + after_ids:
        assert audit_actions(request_id) == ["gateway.request.accepted", "inference.request.completed"]
    with capsys.disabled():
        print(
            f"\n[resilience] {label} cut: {OUTAGE_REQUESTS} x 503 p50={pct(latencies, 50) * 1000:.1f} ms "
            f"p99={pct(latencies, 99) * 1000:.1f} ms max={max(latencies) * 1000:.1f} ms; "
            f"accepting again {recovery * 1000:.0f} ms after restore"
        )


def test_redis_cut_mid_run_fails_closed_then_recovers_without_restart(
    api_key, stub_model, redis_proxy, start_gunicorn, start_worker, capsys
):
    env = {"REDIS_URL": redis_url_via(redis_proxy), "MODEL_API_URL": stub_model.url, **ROOMY}
    web = start_gunicorn(workers=2, **env)
    worker = start_worker(**env, **FAST_WORKER)
    _outage_then_recovery(web, worker, api_key(tier="privileged"), stub_model, redis_proxy, "redis", capsys)


def test_postgres_cut_mid_run_fails_closed_then_recovers_without_restart(
    api_key, stub_model, pg_proxy, start_gunicorn, start_worker, capsys
):
    env = {"DATABASE_URL": database_url_via(pg_proxy), "MODEL_API_URL": stub_model.url, **ROOMY}
    web = start_gunicorn(workers=2, **env)
    worker = start_worker(**env, **FAST_WORKER)
    _outage_then_recovery(web, worker, api_key(tier="privileged"), stub_model, pg_proxy, "postgres", capsys)
