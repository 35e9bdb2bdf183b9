"""Ops fixtures: a real gunicorn serving the app, and a Prometheus text parser."""

import json
import socket
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ManagedProcess, process_env, wait_for


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict

    def json(self):
        return json.loads(self.body)


def http(url: str, *, method: str = "GET", body: bytes | None = None, headers: dict | None = None) -> Reply:
    """One HTTP request with urllib; error statuses come back as replies, not exceptions."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            return Reply(resp.status, resp.read(), dict(resp.headers))
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, exc.read(), dict(exc.headers))


class Gunicorn(ManagedProcess):
    url: str


@pytest.fixture
def start_gunicorn(tmp_path):
    """A factory: ``start_gunicorn(workers=2, **env) -> Gunicorn``, on a free loopback port, once /health answers."""
    started: list[Gunicorn] = []

    def start(workers: int = 2, **extra_env) -> Gunicorn:
        port = free_port()
        args = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}",
                "--workers", str(workers), "safety_admin.wsgi:application"]  # fmt: skip
        proc = Gunicorn(args, process_env(**extra_env), tmp_path / f"gunicorn-{len(started)}.log")
        proc.url = f"http://127.0.0.1:{port}"
        started.append(proc)

        def up() -> bool:
            if proc.proc.poll() is not None:
                pytest.fail(f"gunicorn exited early:\n{proc.output()[-3000:]}")
            try:
                return http(f"{proc.url}/health").status == 200
            except OSError:
                return False

        wait_for(up, timeout=60, interval=0.1, message="gunicorn to answer /health")
        return proc

    yield start
    for proc in started:
        proc.stop()


def parse_metrics(text: str) -> dict[tuple[str, tuple], float]:
    """``{(sample name, sorted label pairs): value}`` for every sample in a Prometheus text page."""
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels) -> float:
    """One sample's value; 0 when absent (a labelled counter appears only once incremented)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)
