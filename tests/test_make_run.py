"""`make run` from a clean data directory: embedded Redis, SQLite, demo model, one prompt, clean stop."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT, wait_for

pytestmark = pytest.mark.resilience


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _http(method: str, url: str, body: dict | None = None, key: str = "") -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    if key:
        request.add_header("X-API-Key", key)
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, {}


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_make_run_starts_answers_and_stops(tmp_path: Path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "MODEL_API_URL", "SAFETY_ENV"}}
    env.update(PORT=str(port), SAFETY_DATA_DIR=str(tmp_path / "data"), PYTHONUNBUFFERED="1")
    log_path = tmp_path / "make-run.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "scripts/devstack.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            wait_for(lambda: _http("GET", f"http://127.0.0.1:{port}/ready")[0] == 200, timeout=180, message="/ready")
            # /ready answers a moment before make run prints its banner with the credentials.
            wait_for(lambda: "Press Ctrl-C" in log_path.read_text(), timeout=30, message="the banner")
            output = log_path.read_text()
            key = re.search(r"Demo API key \(verified tier\): (sa_\S+)", output).group(1)
            redis_port = int(re.search(r"starting embedded Redis .* on 127\.0\.0\.1:(\d+)", output).group(1))
            assert "password" in output
            assert "admin" in output
            assert "reviewer" in output
            assert "senior" in output

            status, body = _http(
                "POST", f"http://127.0.0.1:{port}/safety/infer", {"user_input": "How do tides work?"}, key
            )
            assert (status, body["status"]) == (202, "queued")
            final = wait_for(
                lambda: (
                    (s := _http("GET", f"http://127.0.0.1:{port}/safety/status/{body['request_id']}", key=key)[1])
                    and s.get("status") == "completed"
                    and s
                ),
                timeout=60,
                message="the demo model's answer",
            )
            assert final["response"].startswith("[demo model] ")
            assert "How do tides work?" in final["response"]
            assert (tmp_path / "data" / "safety_admin.sqlite3").exists()
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                code = proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise
    assert code == 0, log_path.read_text()[-3000:]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (_port_open(port) or _port_open(redis_port)):
        time.sleep(0.2)
    assert (_port_open(port), _port_open(redis_port)) == (False, False)
