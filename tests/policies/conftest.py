"""Policies tests swap the process-wide ruleset; put the untouched state back for every other test."""

import json
import socket
import sys
import urllib.error
import urllib.request

import pytest

from safety_admin.policies import runtime
from tests.conftest import ManagedProcess, process_env, wait_for


@pytest.fixture(autouse=True)
def _fresh_policy_runtime():
    runtime.reset()
    yield
    runtime.reset()


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_user(
        username="polly", password="pw-polly-123", is_staff=True, is_superuser=True
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_post_json(url: str, payload: dict, headers: dict) -> tuple[int, dict]:
    req = urllib.request.Request(
        url, data=json.dumps(payload).encode(), method="POST", headers={"Content-Type": "application/json", **headers}
    )
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def start_web(tmp_path):
    """A factory: ``start_web(workers=2, **env) -> ManagedProcess`` (gunicorn on a free port, ``.url`` set)."""
    started: list[ManagedProcess] = []

    def start(workers: int = 2, **extra_env) -> ManagedProcess:
        port = free_port()
        args = [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "gunicorn.conf.py",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "safety_admin.wsgi:application",
        ]
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
