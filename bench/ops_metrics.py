"""Cost of the ops read paths at scale: a /metrics scrape (with the scrape-time state collector) and the
staff overview page, with 100k pending escalations (20k with --quick) in a throwaway PostgreSQL database.

Baselines measured in the same run: the same two requests on the empty database, and the process-only
part of the scrape (``generate_latest(REGISTRY)``, what django_prometheus alone would serve).
Targets at full size: /metrics p95 ≤ 500 ms (Prometheus's scrape timeout is 10 s; at realistic backlogs of
a few hundred the state collector costs a few ms) and overview p95 ≤ 2 s. Both read every pending escalation
(counts, oldest, overdue by due_at) and every escalation of the window, so they grow linearly with the backlog.
"""

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "safety_admin.settings")

SAMPLES = 40
WARMUP = 3
TARGETS_MS = {"metrics": 500.0, "overview": 2000.0}


def log(msg: str) -> None:
    print(f"  {msg}", flush=True)


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


def timed(fn) -> float:
    times = []
    for i in range(WARMUP + SAMPLES):
        t = time.perf_counter()
        fn()
        if i >= WARMUP:
            times.append((time.perf_counter() - t) * 1000)
    return p95(times)


def measure(client) -> dict[str, float]:
    from prometheus_client import REGISTRY, generate_latest

    def get(url):
        def run():
            response = client.get(url)
            if response.status_code != 200:
                raise RuntimeError(f"GET {url} answered {response.status_code}")

        return run

    return {
        "process_only": timed(lambda: generate_latest(REGISTRY)),
        "metrics": timed(get("/metrics")),
        "overview": timed(get("/ops/overview/")),
        "overview_30d": timed(get("/ops/overview/?window=30d")),
    }


def main(argv: list[str]) -> int:
    import django
    import psycopg

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connections
    from django.test import Client

    from bench.review_queue import seed_escalations, vacuum

    quick = "--quick" in argv
    n_pending, n_decided = (20_000, 2_000) if quick else (100_000, 10_000)
    db = settings.DATABASES["default"]
    if not db["ENGINE"].endswith("postgresql"):
        print("ops_metrics bench needs PostgreSQL (DATABASE_URL=postgres://…); skipped")
        return 0
    name = f"bench_ops_{os.getpid()}"
    admin_dsn = dict(host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"],
                     password=db["PASSWORD"] or None, dbname="postgres", autocommit=True)  # fmt: skip
    print(f"ops_metrics: /metrics and /ops/overview/ p95, empty database (baseline) vs {n_pending:,} pending")
    with psycopg.connect(**admin_dsn) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    connections["default"].close()
    connections["default"].settings_dict["NAME"] = name
    try:
        t = time.monotonic()
        call_command("migrate", verbosity=0)
        log(f"migrated throwaway database {name} in {time.monotonic() - t:.1f} s")
        from safety_admin.accounts.models import User

        staff = User.objects.create_user(username="bench-ops", password=None, is_staff=True)
        client = Client()
        client.force_login(staff)
        log("measuring on the empty database")
        base = measure(client)
        seed_escalations(n_pending, n_decided)
        vacuum()
        log("measuring at scale")
        big = measure(client)
    finally:
        connections["default"].close()
        with psycopg.connect(**admin_dsn) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(f"  {'p95 (ms)':<14}{'empty':>10}{'at scale':>12}{'ratio':>8}")
    for key in ("process_only", "metrics", "overview", "overview_30d"):
        print(f"  {key:<14}{base[key]:>10.2f}{big[key]:>12.2f}{big[key] / base[key]:>8.1f}x")
    print(f"  scrape at scale vs process-only baseline: {big['metrics'] / big['process_only']:.1f}x")
    failed = [k for k, limit in TARGETS_MS.items() if big[k] > limit]
    for key in failed:
        print(f"  target missed: {key} p95 {big[key]:.1f} ms > {TARGETS_MS[key]:.0f} ms")
    return 1 if failed and not quick else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
