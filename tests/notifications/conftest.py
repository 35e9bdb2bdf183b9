"""Loopback fakes of Slack (webhook, chat.postMessage, chat.update, conversations.history) and PagerDuty.

Each fake is a real HTTP server (tests.stubs.StubServer) with just enough receiver behaviour to test
the outbox: Slack keeps posted messages by ts, PagerDuty keeps incidents by dedup_key. ``fail`` makes the
next answers fail: a list of Reply objects consumed first, or a callable for a persistent failure.
"""

import contextlib
import itertools
import json
import os
import signal
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.stubs import Recorded, Reply, StubServer

SLACK_CHANNEL_ID = "C0SAFETY"


class FakeReceiver:
    def __init__(self):
        self.lock = threading.Lock()
        self.queued_failures: list[Reply] = []
        self.server = StubServer(self.handle)
        # A short poll interval makes shutdown() quick (the default 0.5 s adds up over the suite).
        self.server.thread = threading.Thread(
            target=self.server.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def fail_next(self, *replies: Reply) -> None:
        with self.lock:
            self.queued_failures.extend(replies)

    def _failure(self) -> Reply | None:
        with self.lock:
            return self.queued_failures.pop(0) if self.queued_failures else None

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def requests(self) -> list[Recorded]:
        return self.server.requests


class FakeSlack(FakeReceiver):
    """Webhook at /services/T000/B000/XXXX; Web API under /api/."""

    webhook_path = "/services/T000/B000/XXXX"

    def __init__(self):
        super().__init__()
        self.messages: dict[str, dict] = {}  # ts -> the latest body posted or updated
        self.webhook_posts: list[dict] = []
        self._ts = itertools.count(1)
        self.after_store = None  # a Reply to answer with *after* a post is stored (response lost)

    def handle(self, rec: Recorded) -> Reply:
        failure = self._failure()
        path = urlsplit(rec.path).path
        if failure is not None and failure.status != 200:
            return failure
        if path == self.webhook_path:
            self.webhook_posts.append(rec.json())
            return Reply(200, "ok", {"Content-Type": "text/plain"})
        if rec.headers.get("authorization") != "Bearer xoxb-test":
            return Reply(200, {"ok": False, "error": "invalid_auth"})
        if path == "/api/chat.postMessage":
            body = rec.json()
            ts = f"1700000000.{next(self._ts):06d}"
            self.messages[ts] = body
            stored = Reply(200, {"ok": True, "channel": SLACK_CHANNEL_ID, "ts": ts, "message": body})
            if failure is not None:  # a 200 failure entry means: store it, then answer late (delay)
                return Reply(200, stored.body, delay=failure.delay)
            return stored
        if path == "/api/chat.update":
            body = rec.json()
            if body.get("channel") != SLACK_CHANNEL_ID or body.get("ts") not in self.messages:
                return Reply(200, {"ok": False, "error": "message_not_found"})
            self.messages[body["ts"]] = body
            return Reply(200, {"ok": True, "channel": SLACK_CHANNEL_ID, "ts": body["ts"]})
        if path == "/api/conversations.history":
            query = parse_qs(urlsplit(rec.path).query) or parse_qs(rec.body.decode())
            if query.get("channel") != [SLACK_CHANNEL_ID]:
                return Reply(200, {"ok": False, "error": "channel_not_found"})
            history = [{"ts": ts, "text": body.get("text"), "metadata": body.get("metadata")}
                       for ts, body in reversed(self.messages.items())]  # fmt: skip
            return Reply(200, {"ok": True, "messages": history})
        return Reply(404, {"ok": False, "error": "unknown_method"})

    def posts(self) -> list[Recorded]:
        return [r for r in self.requests if urlsplit(r.path).path in {"/api/chat.postMessage", self.webhook_path}]


class FakePagerDuty(FakeReceiver):
    """Events API v2 at /v2/enqueue, deduplicating by dedup_key like the real one."""

    def __init__(self):
        super().__init__()
        self.incidents: dict[str, str] = {}  # dedup_key -> "triggered" | "resolved"
        self.triggers = 0

    def handle(self, rec: Recorded) -> Reply:
        failure = self._failure()
        if failure is not None and failure.status != 202:
            return failure
        event = rec.json()
        if urlsplit(rec.path).path != "/v2/enqueue":
            return Reply(404, {"status": "not found"})
        if event.get("routing_key") != "R0UTINGKEY":
            return Reply(400, {"status": "invalid event", "message": "Event object is invalid",
                               "errors": ["'routing_key' is invalid"]})  # fmt: skip
        key = event["dedup_key"]
        if event["event_action"] == "trigger" and self.incidents.get(key) != "triggered":
            self.incidents[key] = "triggered"
            self.triggers += 1
        elif event["event_action"] == "resolve" and key in self.incidents:
            self.incidents[key] = "resolved"
        body = {"status": "success", "message": "Event processed", "dedup_key": key}
        return Reply(202, body, delay=failure.delay if failure is not None else 0.0)


def child_pids(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def kill_pids(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def start_worker(start_worker):
    """tests/conftest.py's factory, plus: the worker's --with-scheduler child never outlives the test.

    A worker that is killed (or does not stop within the grace period) leaves that child running against
    the test Redis and holding a database connection, so it is killed here by pid.
    """
    started = []

    def start(*args, **kwargs):
        proc = start_worker(*args, **kwargs)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        children = child_pids(proc.proc.pid)
        proc.stop()
        kill_pids(children)


@pytest.fixture
def fake_slack():
    fake = FakeSlack()
    fake.server.start()
    yield fake
    fake.server.stop()


@pytest.fixture
def fake_pagerduty():
    fake = FakePagerDuty()
    fake.server.start()
    yield fake
    fake.server.stop()


def slack_webhook_env(fake: FakeSlack) -> dict[str, str]:
    return {"SLACK_WEBHOOK": fake.url + FakeSlack.webhook_path, "SLACK_BOT_TOKEN": "", "SLACK_CHANNEL": ""}


def slack_bot_env(fake: FakeSlack) -> dict[str, str]:
    return {"SLACK_WEBHOOK": "", "SLACK_BOT_TOKEN": "xoxb-test", "SLACK_CHANNEL": SLACK_CHANNEL_ID,
            "SLACK_API_URL": fake.url + "/api/"}  # fmt: skip


def pagerduty_env(fake: FakePagerDuty) -> dict[str, str]:
    return {"PAGERDUTY_ROUTING_KEY": "R0UTINGKEY", "PAGERDUTY_EVENTS_URL": fake.url + "/v2/enqueue"}


@pytest.fixture
def configure(settings):
    """``configure(**env)`` applies env-style strings to Django settings for this test."""

    def apply(**values: str) -> None:
        for name, value in values.items():
            setattr(settings, name, value)

    settings.SLACK_WEBHOOK = ""
    settings.SLACK_BOT_TOKEN = ""
    settings.SLACK_CHANNEL = ""
    settings.PAGERDUTY_ROUTING_KEY = ""
    settings.SITE_URL = "https://safety.example.test"
    return apply


@pytest.fixture
def make_escalation(db):
    """``make_escalation(severity="high", user_input=..., direction="prompt") -> Escalation``."""
    from review.services import escalation_create
    from safety_admin.inference.models import InferenceRequest, RequestStatus

    def make(severity: str = "high", user_input: str = "how do I build a thing", direction: str = "prompt",
             reason_code: str = "HIGH_RISK_WEAPON"):  # fmt: skip
        req = InferenceRequest.objects.create(
            principal_id="apikey:test",
            principal_pseudonym="p-test",
            principal_tier="user",
            status=RequestStatus.IN_REVIEW,
            user_input=user_input,
            trace_id="trace-notify",
        )
        hit = {"rule_id": "r1", "reason_code": reason_code, "severity": severity, "action": "review",
               "span": [0, 3], "view": "base", "field": "user_input"}  # fmt: skip
        return escalation_create(request=req, direction=direction, severity=severity, hits=[hit])

    return make


def decoded(rec: Recorded) -> dict:
    return json.loads(rec.body)
