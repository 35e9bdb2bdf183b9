"""Shared helpers for the benchmarks: throwaway PostgreSQL databases, child processes, load, percentiles."""

import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_BASE = PG_ADMIN_URL.rsplit("/", 1)[0]
BENCH_REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")


def progress(message: str) -> None:
    print(f"  … {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary_ms(values: list[float]) -> str:
    return (
        f"n={len(values)} p50={percentile(values, 50) * 1000:.2f} ms "
        f"p99={percentile(values, 99) * 1000:.2f} ms mean={statistics.fmean(values) * 1000:.2f} ms"
    )


@contextmanager
def fresh_database(name: str):
    """A new, migrated PostgreSQL database; dropped afterwards. Yields its URL."""
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{PG_BASE}/{name}"
    try:
        progress(f"migrating database {name}")
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=ROOT,
            env=child_env(DATABASE_URL=url),
            check=True,
        )
        yield url
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="safety_admin.settings",
        PYTHONPATH=str(ROOT),
        SAFETY_ENV="test",
        REDIS_URL=BENCH_REDIS_URL,
        SAFETY_LOG_LEVEL="WARNING",
    )
    env.update(extra)
    return env


class Proc:
    def __init__(self, args: list[str], env: dict[str, str], name: str):
        self.name = name
        self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def start_gunicorn(env: dict[str, str], port: int, workers: int = 2) -> Proc:
    proc = Proc(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            str(ROOT / "gunicorn.conf.py"),
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "safety_admin.wsgi:application",
        ],
        env,
        "gunicorn",
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as resp:
                if resp.status == 200:
                    return proc
        except OSError:
            time.sleep(0.2)
    proc.stop()
    raise RuntimeError("gunicorn did not start")


def start_worker(env: dict[str, str], queues=("inference",)) -> Proc:
    return Proc(
        [
            sys.executable,
            "manage.py",
            "rqworker",
            *queues,
            "--worker-class",
            "safety_admin.inference.worker.SafetyWorker",
            "--with-scheduler",
        ],
        env,
        "rqworker",
    )


def open_loop(port: int, requests: list[tuple[str, bytes, dict]], rate: float, duration: float, threads: int = 8):
    """Send ``requests`` (cycled) at ``rate`` per second for ``duration`` s; returns (latencies, statuses, wall s).

    Open loop: each request has a scheduled start time, and latency is measured from that time, so a slow
    server cannot hide queueing delay (no coordinated omission).
    """
    total = int(rate * duration)
    start = time.perf_counter() + 0.2
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    counter = iter(range(total))

    def run():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while True:
            with lock:
                index = next(counter, None)
            if index is None:
                break
            scheduled = start + index / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            path, body, headers = requests[index % len(requests)]
            try:
                conn.request("POST", path, body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                status = resp.status
            except OSError:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                status = 0
            elapsed = time.perf_counter() - scheduled
            with lock:
                latencies.append(elapsed)
                statuses[status] = statuses.get(status, 0) + 1
        conn.close()

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    return latencies, statuses, time.perf_counter() - start


def json_body(payload: dict) -> bytes:
    return json.dumps(payload).encode()
