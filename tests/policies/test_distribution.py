"""Publishing reaches real processes: two gunicorn workers and an rqworker load the publisher's compiled form
before the version is activated (staging) and swap within a second of the activation (compiling themselves
when that form is not trustworthy)."""

import subprocess
import sys
import threading
import time

import pytest

from safety_admin.inference.models import InferenceRequest
from safety_admin.policies import runtime, services
from tests.conftest import ROOT, process_env, wait_for
from tests.policies.conftest import http_post_json

pytestmark = pytest.mark.django_db(transaction=True)

# The issue asks for 1 s from the activation to every process switched. Staged processes only swap a reference
# then (milliseconds), so that bound is asserted as is; the whole publish call (with the staging wait) gets room
# for a loaded 2-core CI machine. Both figures are printed.
ACTIVATION_BOUND_SECONDS = 1.0
SWITCH_BOUND_SECONDS = 3.0


def _acks_on(version: int | None, count: int):
    acks = runtime.process_acks()
    return acks if len(acks) >= count and all(a["version"] == version for a in acks) else None


def test_publish_switches_gateway_and_worker_within_a_second(api_key, stub_model, start_worker, start_web):
    key = api_key(tier="privileged")
    blocklist = services.blocklist_create(actor_label="alice", name="canaries")
    services.policy_publish(actor_label="alice", note="baseline")
    web = start_web(workers=2)
    start_worker(MODEL_API_URL=stub_model.url)

    # Warm up: both gunicorn workers and the rqworker serve traffic (and so follow announcements).
    def warm():
        status, body = http_post_json(f"{web.url}/safety/infer", {"user_input": "hello"}, {"X-API-Key": key})
        assert status == 202, body
        return _acks_on(1, 3)

    wait_for(warm, timeout=60, interval=0.05, message="three processes on v1")
    assert {a["label"] for a in runtime.process_acks()} == {"v1"}
    # Fresh processes load the compiled form the publisher stored; none compiled the version itself.
    assert {a["source"] for a in runtime.process_acks()} == {"shared"}

    services.entry_create(
        actor_label="alice",
        blocklist_id=blocklist.pk,
        pattern="giraffecanary",
        reason_code="HATE",
        severity="high",
        action="refuse",
        direction="prompt",
    )
    services.entry_create(
        actor_label="alice",
        blocklist_id=blocklist.pk,
        pattern="zebracanary",
        reason_code="VIOLENT_GRAPHIC",
        severity="high",
        action="refuse",
        direction="output",
    )
    # Traffic keeps flowing while the processes swap: no request may fail.
    statuses: list[int] = []
    stop = threading.Event()

    def traffic():
        while not stop.is_set():
            statuses.append(http_post_json(f"{web.url}/safety/infer", {"user_input": "hello"}, {"X-API-Key": key})[0])

    sender = threading.Thread(target=traffic, daemon=True)
    sender.start()
    started = time.time()
    version = services.policy_publish(actor_label="alice", note="canaries")
    published = time.time()
    try:
        acks = wait_for(lambda: _acks_on(2, 3), timeout=20, interval=0.01, message="every process on v2")
    finally:
        stop.set()
        sender.join(30)
    switch = max(a["at"] for a in acks) - started
    after_activation = max(a["at"] for a in acks) - version.active_since
    print(
        f"\npublish -> 3 processes switched: {after_activation * 1000:.0f} ms after the activation, "
        f"{switch * 1000:.0f} ms after the publish call started (call {(published - started) * 1000:.0f} ms, "
        f"staging wait {version.staging['wait_s'] * 1000:.0f} ms; per process "
        f"{sorted(round((a['at'] - version.active_since) * 1000) for a in acks)} ms after the activation; "
        f"{len(statuses)} requests during the switch)"
    )
    assert set(statuses) == {202}
    assert (version.shared, version.announced) == (True, True)
    # Every live process loaded v2 before it was activated, and then only swapped it in.
    assert {k: version.staging[k] for k in ("processes", "staged", "reported")} == {
        "processes": 3,
        "staged": 3,
        "reported": 3,
    }
    assert {(a["source"], a["via"]) for a in acks} == {("shared", "staged")}
    assert after_activation < ACTIVATION_BOUND_SECONDS
    assert switch < SWITCH_BOUND_SECONDS

    # The gateway refuses with the new prompt rule, whichever gunicorn process answers.
    for _ in range(6):
        status, body = http_post_json(f"{web.url}/safety/infer", {"user_input": "a giraffecanary"}, {"X-API-Key": key})
        assert (status, body["reason_code"]) == (400, "HATE")
    # The worker's post-check blocks the model's echo with the new output rule.
    status, body = http_post_json(f"{web.url}/safety/infer", {"user_input": "say zebracanary"}, {"X-API-Key": key})
    assert status == 202
    req = wait_for(
        lambda: InferenceRequest.objects.filter(pk=body["request_id"], status="blocked").first(),
        timeout=30,
        message="the worker to block the echo",
    )
    assert (req.reason_codes, req.policy_version) == (["VIOLENT_GRAPHIC"], "v2")

    # Rollback is one call and reaches every process the same way.
    started = time.time()
    back = services.policy_rollback(actor_label="bob")
    acks = wait_for(lambda: _acks_on(1, 3), timeout=20, interval=0.01, message="every process back on v1")
    last = max(a["at"] for a in acks)
    print(
        f"rollback -> 3 processes switched: {(last - back.active_since) * 1000:.0f} ms after the activation, "
        f"{(last - started) * 1000:.0f} ms after the call started"
    )
    assert back.staging["staged"] == 3
    assert {(a["source"], a["via"]) for a in acks} == {("shared", "staged")}
    assert last - back.active_since < ACTIVATION_BOUND_SECONDS
    status, body = http_post_json(f"{web.url}/safety/infer", {"user_input": "a giraffecanary"}, {"X-API-Key": key})
    assert (status, body["status"]) == (202, "queued")

    # A compiled form whose MAC does not check out (here: signed with another secret, as someone who can write to
    # Redis but does not know SECRET_KEY would) is refused: every process compiles v2 itself and still switches.
    out = subprocess.run(
        [sys.executable, "manage.py", "rollback_policy", "--to", "2"],
        cwd=ROOT,
        env=process_env(DJANGO_SECRET_KEY="not-the-deployment-secret-" + "z" * 40),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    acks = wait_for(lambda: _acks_on(2, 3), timeout=20, interval=0.01, message="every process on v2 again")
    # They answered the staging (so the publisher did not wait its full bound) but staged nothing.
    assert {(a["source"], a["via"], a["staged_ok"]) for a in acks} == {("compiled", "loaded", False)}
    for _ in range(4):
        status, body = http_post_json(f"{web.url}/safety/infer", {"user_input": "a giraffecanary"}, {"X-API-Key": key})
        assert (status, body["reason_code"]) == (400, "HATE")
