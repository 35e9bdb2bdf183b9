"""The worker side: a worker SIGKILLed mid-job, and a model that is slow, failing, garbled or huge.

The gateway runs in-process (the Django test client); the worker is a real rqworker process; the model is a
loopback stub whose handler each test scripts.
"""

import contextlib
import itertools
import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from safety_admin.inference.models import InferenceRequest
from tests.conftest import wait_for
from tests.resilience.conftest import FAST_WORKER, audit_actions, wait_final
from tests.stubs import Reply, chat_completion, echo_model

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.resilience]

JOB_TIMEOUT = 4  # seconds; with a 1 s sweep a lost job is picked up within about 5 s


@pytest.fixture
def two_quick_retries(settings):
    """Retries are fixed at enqueue, by the gateway (this process), not by the worker's environment."""
    settings.INFERENCE_RETRIES = 2
    settings.INFERENCE_RETRY_INTERVALS = [0, 0]


def infer(client, key, text) -> str:
    response = client.post(
        "/safety/infer", data=json.dumps({"user_input": text}), content_type="application/json",
        headers={"X-API-Key": key},
    )  # fmt: skip
    assert response.status_code == 202, response.content
    return response.json()["request_id"]


def children_of(pid: int) -> list[int]:
    """Direct children (RQ's scheduler is a forked child of the worker)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(p) for p in text]
    return found


def sigkill_with_children(worker) -> None:
    """SIGKILL the worker and its forked scheduler, as an OOM kill or node loss of the container would."""
    kids = children_of(worker.proc.pid)
    worker.kill()
    for pid in kids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_worker_sigkilled_mid_job_completes_exactly_once(client, api_key, stub_model, start_worker, settings,
                                                         capsys):  # fmt: skip
    settings.INFERENCE_JOB_TIMEOUT = JOB_TIMEOUT  # the gateway sets the job timeout at enqueue
    calls = itertools.count()
    release = threading.Event()

    def first_call_hangs(rec):
        if next(calls) == 0:
            release.wait(30)  # the first worker dies while waiting for this answer
        return echo_model(rec)

    stub_model.handler = first_call_hangs
    env = {"MODEL_API_URL": stub_model.url, "INFERENCE_JOB_TIMEOUT": str(JOB_TIMEOUT), **FAST_WORKER}
    key = api_key()
    first = start_worker(**env)
    victim = infer(client, key, "slow one")
    wait_for(lambda: len(stub_model.requests) == 1, timeout=60, message=f"first model call; log:\n{first.output()}")
    behind = [infer(client, key, f"queued behind {i}") for i in range(3)]

    sigkill_with_children(first)
    killed_at = time.monotonic()
    start_worker(**env)
    wait_final([victim, *behind], timeout=60)
    recovered = time.monotonic() - killed_at
    release.set()

    req = InferenceRequest.objects.get(pk=victim)
    assert (req.status, req.response, req.attempts) == ("completed", "echo: slow one", 2)
    # Exactly once in effect: one final state, one completion event, whatever the number of model calls.
    assert audit_actions(victim) == ["gateway.request.accepted", "inference.request.completed"]
    for request_id in behind:
        assert audit_actions(request_id) == ["gateway.request.accepted", "inference.request.completed"]
    assert len(stub_model.requests) == 5
    # Nothing stays pending beyond the job timeout plus the sweep interval (plus process start-up slack).
    assert recovered < JOB_TIMEOUT + int(FAST_WORKER["INFERENCE_SWEEP_SECONDS"]) + 15
    with capsys.disabled():
        print(f"\n[resilience] worker SIGKILL mid-job: completed {recovered:.1f} s after the kill "
              f"(job timeout {JOB_TIMEOUT} s + sweep 1 s)")  # fmt: skip


HUGE = json.dumps(chat_completion("A" * 10 * 1024 * 1024)).encode()  # a 10 MB answer
FAULTS = {
    "slow": (Reply(body=chat_completion("too late"), delay=3), "model API timed out", 3),
    "5xx": (Reply(status=502, body="<html>bad gateway</html>"), "model API answered 502", 3),
    "429": (Reply(status=429, body={"error": "slow down"}, headers={"Retry-After": "0"}), "model API answered 429", 3),
    "garbage": (Reply(body=b"\x00\xffnot json{"), "model API returned an unreadable answer", 3),
    "wrong-shape": (
        Reply(body={"choices": [{"message": {"content": 42}}]}),
        "model API returned an answer without text",
        3,
    ),
    # Read up to MODEL_MAX_RESPONSE_BYTES (2 MB), then stop: never 10 MB in memory or in the row. No retry:
    # the same answer would come back.
    "huge": (Reply(body=HUGE), "model answer larger than MODEL_MAX_RESPONSE_BYTES", 1),
}


def test_model_slow_5xx_garbage_huge_are_retried_then_fail_with_a_reason(client, api_key, stub_model, start_worker,
                                                                         two_quick_retries, capsys):  # fmt: skip
    def by_prompt(rec):
        user = [m["content"] for m in rec.json()["messages"] if m["role"] == "user"][-1]
        return FAULTS[user.removeprefix("fault ")][0]

    stub_model.handler = by_prompt
    key = api_key()
    start_worker(MODEL_API_URL=stub_model.url, MODEL_READ_TIMEOUT="0.5", **FAST_WORKER)
    started = time.monotonic()
    ids = {name: infer(client, key, f"fault {name}") for name in FAULTS}
    wait_final(ids.values(), wanted=("failed",), timeout=90)
    elapsed = time.monotonic() - started

    found = {name: InferenceRequest.objects.get(pk=rid) for name, rid in ids.items()}
    assert {name: (r.failure_reason, r.response, r.attempts) for name, r in found.items()} == {
        name: (reason, "", attempts) for name, (_reply, reason, attempts) in FAULTS.items()
    }
    calls = [rec.json()["messages"][-1]["content"].removeprefix("fault ") for rec in stub_model.requests]
    assert {name: calls.count(name) for name in FAULTS} == {name: n for name, (_r, _m, n) in FAULTS.items()}
    for request_id in ids.values():
        assert audit_actions(request_id) == ["gateway.request.accepted", "inference.request.failed"]
    with capsys.disabled():
        print(f"\n[resilience] model faults ({', '.join(FAULTS)}): all failed with a reason in {elapsed:.1f} s")
