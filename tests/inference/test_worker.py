"""The worker outlives a Redis outage that begins between two waits for a job (RQ's own loop would quit)."""

from urllib.parse import urlsplit

import pytest
import redis
from django.conf import settings
from redis.backoff import NoBackoff
from redis.retry import Retry
from rq.worker import SimpleWorker

from safety_admin.inference.worker import SafetyWorker
from tests.tcpproxy import TcpProxy

pytestmark = pytest.mark.django_db

STEPS = ("suspension check", "heartbeat", "maintenance")


@pytest.fixture
def proxied():
    """A Redis connection through a proxy that the test can cut, and the proxy."""
    parts = urlsplit(settings.REDIS_URL)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 6379).start()
    db = int(parts.path.strip("/") or 0)
    # No retries: redis-py's default ones back off for seconds before the error the test waits for.
    retry = Retry(NoBackoff(), 0)
    client = redis.Redis(host="127.0.0.1", port=proxy.port, db=db, socket_connect_timeout=0.5, retry=retry)
    yield client, proxy
    proxy.stop()


def _run_steps(worker) -> None:
    worker.check_for_suspension(False)
    worker.heartbeat()
    worker.run_maintenance_tasks()


def test_rq_alone_quits_on_these_steps(proxied):
    # Why SafetyWorker guards them: in RQ's main loop only the wait for a job retries; these raise.
    client, proxy = proxied
    worker = SimpleWorker(["inference"], connection=client)
    proxy.cut()
    with pytest.raises(redis.exceptions.ConnectionError):
        worker.check_for_suspension(False)
    with pytest.raises(redis.exceptions.ConnectionError):
        worker.heartbeat()


def test_redis_cut_between_jobs_is_logged_and_the_worker_carries_on(proxied, caplog):
    client, proxy = proxied
    worker = SafetyWorker(["inference"], connection=client)
    proxy.cut()
    _run_steps(worker)  # nothing raised
    steps = {r.step for r in caplog.records if getattr(r, "event", "") == "worker.redis_unreachable"}
    assert steps == set(STEPS)
    proxy.restore()  # and once Redis is back, the same steps work again without a word
    caplog.clear()
    _run_steps(worker)
    assert not [r for r in caplog.records if getattr(r, "event", "") == "worker.redis_unreachable"]
    assert client.ttl(worker.key) > 0  # the heartbeat reached Redis
