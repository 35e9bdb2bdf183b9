"""Shared fixtures: real Redis (flushed per test), loopback stub servers, API keys, worker processes."""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.db import connection

from tests.stubs import StubServer, echo_model

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _clean_redis():
    """Each test starts with an empty Redis database (the test DB number from REDIS_URL)."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.flushdb()
    yield
    client.close()


@pytest.fixture
def redis_client():
    client = redis.Redis.from_url(settings.REDIS_URL)
    yield client
    client.close()


@pytest.fixture
def api_key(db):
    """A factory: ``api_key(tier="verified") -> raw key``."""
    from safety_admin.gateway.services import api_key_create

    def make(tier: str = "verified", name: str = "test", profile: str = "") -> str:
        return api_key_create(name=name, tier=tier, profile=profile, actor_label="tests")[1]

    return make


@pytest.fixture
def stub_model():
    server = StubServer(echo_model).start()
    yield server
    server.stop()


def process_env(**extra: str) -> dict[str, str]:
    """Environment for a child process (worker, gunicorn) that shares this test's database and Redis."""
    env = dict(os.environ)
    db = connection.settings_dict
    if db["ENGINE"].endswith("postgresql"):
        env["DATABASE_URL"] = f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env["REDIS_URL"] = settings.REDIS_URL
    env["DJANGO_SETTINGS_MODULE"] = "safety_admin.settings"
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


class ManagedProcess:
    """A child process with its output in a log file; ``stop()`` terminates, then kills."""

    def __init__(self, args: list[str], env: dict, log_path: Path):
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        # Own process group, so stop() also ends children (rqworker's scheduler) that would outlive the test.
        self.proc = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        if not self._log.closed:
            self._log.close()


@pytest.fixture
def start_worker(tmp_path):
    """A factory: ``start_worker(queues=("inference",), **env) -> ManagedProcess`` running a real rqworker."""
    started: list[ManagedProcess] = []

    def start(queues=("inference",), **extra_env) -> ManagedProcess:
        args = [sys.executable, "manage.py", "rqworker", *queues,
                "--worker-class", "safety_admin.inference.worker.SafetyWorker", "--with-scheduler"]  # fmt: skip
        proc = ManagedProcess(args, process_env(**extra_env), tmp_path / f"worker-{len(started)}.log")
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()
        # Shown by pytest only when the test fails.
        print(f"--- {proc.log_path.name} (last 4000 chars) ---\n{proc.output()[-4000:]}")


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.05, message: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value; fail the test with ``message`` on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {message}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def start_web(tmp_path):
    """A factory: ``start_web(workers=2, **env) -> ManagedProcess`` running real gunicorn on a free loopback port.

    Returns once /health answers; ``.url`` is the base URL.
    """
    started: list[ManagedProcess] = []

    def start(workers: int = 2, **extra_env) -> ManagedProcess:
        port = free_port()
        args = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}",
                "--workers", str(workers), "safety_admin.wsgi:application"]  # fmt: skip
        proc = ManagedProcess(args, process_env(**extra_env), tmp_path / f"web-{len(started)}.log")
        proc.url = f"http://127.0.0.1:{port}"
        started.append(proc)

        def up() -> bool:
            if proc.proc.poll() is not None:
                pytest.fail(f"gunicorn exited early:\n{proc.output()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{proc.url}/health", timeout=5) as resp:
                    return resp.status == 200
            except OSError:
                return False

        wait_for(up, timeout=60, interval=0.1, message="gunicorn to answer /health")
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """Playwright drives Debian's Chromium (Playwright's own download does not work here)."""
    return {
        **browser_type_launch_args,
        "executable_path": os.environ.get("CHROMIUM_PATH") or shutil.which("chromium"),
        "args": ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
    }  # fmt: skip
