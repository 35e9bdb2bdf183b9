"""Fault-injection fixtures: a real gunicorn, real rqworkers, a stub model, and TCP proxies to cut.

Every process started here has a teardown; every wait is a bounded poll. Traffic stays on 127.0.0.1.
"""

import http.client
import json
import time
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings
from django.db import connection

from audits.models import AuditEvent
from safety_admin.inference.models import InferenceRequest
from tests.conftest import process_env, wait_for
from tests.notifications.conftest import configure, fake_pagerduty, fake_slack, make_escalation
from tests.ops.conftest import start_gunicorn
from tests.tcpproxy import TcpProxy

# Sweep every second, so a lost job is found within the patience of a test.
FAST_WORKER = {"INFERENCE_SWEEP_SECONDS": "1", "SAFETY_LOG_LEVEL": "INFO"}


@dataclass
class Answer:
    status: int
    body: bytes
    headers: dict
    elapsed: float

    def json(self):
        return json.loads(self.body)


def call(base_url: str, method: str, path: str, body=None, headers: dict | None = None, timeout=20.0) -> Answer:
    """One HTTP request on a fresh connection; measures wall time; errors come back as answers."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    payload = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    started = time.perf_counter()
    try:
        conn.request(method, path, body=payload, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        return Answer(resp.status, data, {k.lower(): v for k, v in resp.getheaders()}, time.perf_counter() - started)
    finally:
        conn.close()


def infer(base_url: str, key: str, text: str, **headers) -> Answer:
    return call(base_url, "POST", "/safety/infer", {"user_input": text}, {"X-API-Key": key, **headers})


def status_of(base_url: str, key: str, request_id: str) -> dict:
    return call(base_url, "GET", f"/safety/status/{request_id}", headers={"X-API-Key": key}).json()


def wait_final(request_ids, wanted=("completed",), timeout=60.0) -> dict[str, str]:
    """Poll the database until every request is in one of ``wanted``; returns ``{id: status}``."""
    ids = [str(i) for i in request_ids]

    def done():
        found = dict(InferenceRequest.objects.filter(pk__in=ids).values_list("id", "status"))
        found = {str(k): v for k, v in found.items()}
        return found if len(found) == len(ids) and all(v in wanted for v in found.values()) else None

    return wait_for(done, timeout=timeout, interval=0.1, message=f"{len(ids)} requests to reach {wanted}")


def audit_actions(request_id) -> list[str]:
    return list(AuditEvent.objects.filter(request_id=str(request_id)).order_by("id").values_list("action", flat=True))


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def redis_url_via(proxy: TcpProxy) -> str:
    parts = urlsplit(settings.REDIS_URL)
    return urlunsplit((parts.scheme, f"127.0.0.1:{proxy.port}", parts.path, parts.query, ""))


def database_url_via(proxy: TcpProxy) -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@127.0.0.1:{proxy.port}/{db['NAME']}"


@pytest.fixture
def redis_proxy():
    parts = urlsplit(settings.REDIS_URL)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 6379).start()
    yield proxy
    proxy.stop()


@pytest.fixture
def pg_proxy():
    db = connection.settings_dict
    proxy = TcpProxy(db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432)).start()
    yield proxy
    proxy.stop()


# Fixtures re-exported from the other suites' conftest modules.
__all__ = [
    "FAST_WORKER",
    "Answer",
    "call",
    "configure",
    "fake_pagerduty",
    "fake_slack",
    "infer",
    "make_escalation",
    "process_env",
    "start_gunicorn",
    "wait_final",
]
