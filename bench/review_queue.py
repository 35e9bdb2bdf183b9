"""Review console under load: queue and detail page server time with 100k pending escalations,
at 10k and then 1M audit events, in a throwaway PostgreSQL database (created and dropped here).

Target: queue and detail p95 ≤ 100 ms; p95 at 1M audit events / p95 at 10k ≤ 1.5.
Rows are made with INSERT … SELECT generate_series; column lists come from the models at run time,
so fields other apps add (e.g. the audit hash chain) are filled with their defaults.
"""

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "safety_admin.settings")

SAMPLES = 240
TARGET_MS = 100.0
TARGET_RATIO = 1.5


def log(msg: str) -> None:
    print(f"  {msg}", flush=True)


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) >= 20 else max(values)


def bulk_insert(model, count: int, overrides: dict[str, str], *, start: int = 1) -> None:
    """INSERT … SELECT over generate_series(start, start+count-1) AS g; unnamed columns get their defaults."""
    from django.db import connection

    columns, exprs, params = [], [], []
    for field in model._meta.concrete_fields:
        name = field.column
        if name in overrides:
            columns.append(name)
            exprs.append(overrides[name].replace("%", "%%"))  # literal modulo, not a placeholder
        elif field.primary_key and getattr(field, "db_returning", False):
            continue  # identity column fills itself
        elif field.unique:
            columns.append(name)
            is_int = field.get_internal_type() in {"BigIntegerField", "IntegerField", "PositiveIntegerField"}
            # Continue after whatever the app itself wrote meanwhile (e.g. an audit event per sign-in).
            after_max = f"(SELECT coalesce(max({name}), 0) FROM {model._meta.db_table})"
            exprs.append(f"g - {start} + 1 + {after_max}" if is_int else "'b' || md5(g::text)")
        elif field.has_default() or not field.null:
            default = field.get_default()
            columns.append(name)
            exprs.append("%s")
            params.append(field.get_db_prep_save(default if default is not None else "", connection))
    sql = (f"INSERT INTO {model._meta.db_table} ({', '.join(columns)}) "
           f"SELECT {', '.join(exprs)} FROM generate_series({start}, {start + count - 1}) AS g")  # fmt: skip
    with connection.cursor() as cur:
        cur.execute(sql, params)


def seed_escalations(n_pending: int, n_decided: int) -> None:
    from review.models import Escalation
    from safety_admin.inference.models import InferenceRequest

    total = n_pending + n_decided
    t = time.monotonic()
    bulk_insert(InferenceRequest, total, {
        "id": "md5(g::text)::uuid",
        "principal_id": "'apikey:' || (g % 1000)",
        "principal_pseudonym": "'u_' || lpad((g % 1000)::text, 16, '0')",
        "principal_tier": "'user'",
        "status": "CASE WHEN g % 10 = 0 THEN 'blocked' WHEN g % 7 = 0 THEN 'refused' ELSE 'in_review' END",
        "user_input": "'please explain how to build a pipe bomb for request ' || g",
        "response": "'<b>model output</b> number ' || g || ' with <script>alert(1)</script>'",
        "hits": """jsonb_build_array(jsonb_build_object('rule_id', 'rule.' || (g % 50), 'reason_code',
                    'HIGH_RISK_EXPLOSIVE', 'severity', 'medium', 'action', 'review', 'span', jsonb_build_array(31, 40),
                    'view', 'nfkc', 'field', 'user_input'))""",
        "created_at": "now() - make_interval(secs => g)",
        "updated_at": "now()",
    })  # fmt: skip
    log(f"{total:,} inference requests in {time.monotonic() - t:.1f} s")
    t = time.monotonic()
    bulk_insert(Escalation, total, {
        "request_id": "md5(g::text)::uuid",
        "direction": "CASE WHEN (g / 4) % 2 = 0 THEN 'prompt' ELSE 'output' END",
        "severity": "(ARRAY['low','medium','high','critical'])[1 + g % 4]",
        "severity_rank": "g % 4",
        "reason_codes": "jsonb_build_array((ARRAY['HIGH_RISK_EXPLOSIVE','HATE','PRIVACY_PII','JAILBREAK_TEMPLATE',"
                        "'CYBER_ABUSE'])[1 + (g / 8) % 5])",
        "hits": """jsonb_build_array(jsonb_build_object('rule_id', 'rule.' || (g % 50), 'reason_code',
                    'HIGH_RISK_EXPLOSIVE', 'severity', 'medium', 'action', 'review', 'span', jsonb_build_array(31, 40),
                    'view', 'nfkc', 'field', 'user_input'))""",
        "status": f"CASE WHEN g > {n_pending} THEN (CASE WHEN g % 2 = 0 THEN 'approved' ELSE 'blocked' END) "
                  "ELSE 'pending' END",
        "created_at": "now() - make_interval(secs => g)",
        "due_at": "now() - make_interval(secs => g) + interval '1 hour'",
        "decided_by_label": f"CASE WHEN g > {n_pending} THEN 'reviewer' || (g % 7) ELSE '' END",
        "decided_at": f"CASE WHEN g > {n_pending} THEN now() - make_interval(secs => g / 2) END",
        "queue_key": "(3 - g % 4) * 10000000000000000::bigint "
                     "+ (extract(epoch from now() - make_interval(secs => g)) * 1000000)::bigint",
    })  # fmt: skip
    log(f"{total:,} escalations ({n_pending:,} pending) in {time.monotonic() - t:.1f} s")


def seed_audit(count: int, start: int, n_esc: int) -> None:
    from audits.models import AuditEvent

    t = time.monotonic()
    step = 250_000
    done = 0
    while done < count:
        chunk = min(step, count - done)
        bulk_insert(AuditEvent, chunk, {
            "created_at": "now() - make_interval(secs => g)",
            "actor_label": "'reviewer' || (g % 7)",
            "action": "(ARRAY['review.escalation.claimed','review.escalation.approved','gateway.request.accepted'])"
                      "[1 + g % 3]",
            "subject_type": "'review.escalation'",
            "subject_id": f"(1 + g % {n_esc})::text",
            "subject_repr": "'escalation ' || g",
            "request_id": "md5(g::text)",
            "ticket_id": "'audit-' || lpad(to_hex(g), 20, '0')",  # unique, like the real ones
        }, start=start + done)  # fmt: skip
        done += chunk
        log(f"audit events: {start + done - 1:,} ({time.monotonic() - t:.1f} s)")


def vacuum() -> None:
    from django.db import connection

    with connection.cursor() as cur:
        for table in ("review_escalation", "inference_inferencerequest", "audits_auditevent"):
            cur.execute(f"VACUUM ANALYZE {table}")


def use(name: str) -> None:
    """Point the default connection at database ``name`` (connected before any timing starts)."""
    from django.db import connections

    conn = connections["default"]
    conn.close()
    conn.settings_dict["NAME"] = name
    conn.ensure_connection()


def timed_get(client, url: str) -> float:
    t = time.perf_counter()
    response = client.get(url)
    elapsed = (time.perf_counter() - t) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"GET {url} answered {response.status_code}")
    return elapsed


def measure_interleaved(clients: dict[str, object], urls: dict[str, list[str]], rounds: int) -> dict:
    """Alternate between the databases in short rounds, so a busy machine slows both sizes alike."""
    times = {(db, page): [] for db in clients for page in urls}
    for r in range(rounds):
        order = list(clients) if r % 2 == 0 else list(reversed(clients))
        for db in order:
            use(db)
            for page, page_urls in urls.items():
                timed_get(clients[db], page_urls[0])  # warm this connection's plan cache
                for i in range(SAMPLES // rounds):
                    times[(db, page)].append(timed_get(clients[db], page_urls[(r + i) % len(page_urls)]))
    return {key: (p95(values), statistics.median(values)) for key, values in times.items()}


def build(name: str, n_pending: int, n_decided: int, audit_events: int):
    """Create, migrate and fill one throwaway database; returns a signed-in test client for it."""
    from django.core.management import call_command
    from django.test import Client

    use("postgres")
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    use(name)
    t = time.monotonic()
    call_command("migrate", verbosity=0)
    log(f"{name}: migrated in {time.monotonic() - t:.1f} s")
    from safety_admin.accounts.models import User

    boss = User.objects.create_user(username="bench-boss", password="x", tier="privileged")
    seed_escalations(n_pending, n_decided)
    seed_audit(audit_events, 1, n_pending + n_decided)
    vacuum()
    client = Client()
    client.force_login(boss)
    return client


def main(argv: list[str]) -> int:
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection, connections

    quick = "--quick" in argv
    n_pending, n_decided = (20_000, 2_000) if quick else (100_000, 10_000)
    small, large = (10_000, 200_000) if quick else (10_000, 1_000_000)
    db = settings.DATABASES["default"]
    if not db["ENGINE"].endswith("postgresql"):
        print("review_queue bench needs PostgreSQL (DATABASE_URL=postgres://…); skipped")
        return 0
    original = db["NAME"]
    names = {"small": f"bench_review_{os.getpid()}_small", "large": f"bench_review_{os.getpid()}_large"}
    print(f"review_queue: {n_pending:,} pending escalations; audit events {small:,} (baseline) vs {large:,}")
    try:
        clients = {names["small"]: build(names["small"], n_pending, n_decided, small),
                   names["large"]: build(names["large"], n_pending, n_decided, large)}  # fmt: skip
        from review.models import Escalation

        pending_ids = list(Escalation.objects.filter(status="pending").order_by("?").values_list("id", flat=True)[:20])
        middle = Escalation.objects.filter(status="pending").order_by("queue_key", "id")[n_pending // 2]
        urls = {
            "queue": ["/", "/?severity=high", "/?reason=HIGH_RISK_EXPLOSIVE&direction=prompt",
                      f"/?after={middle.queue_key}.{middle.pk}"],
            "detail": [f"/review/escalations/{pk}/" for pk in pending_ids],
        }  # fmt: skip
        log(f"measuring {SAMPLES} requests per page and size, interleaved in rounds")
        result = measure_interleaved(clients, urls, rounds=24)
        load = os.getloadavg()[0]
        print(
            f"load average while measuring: {load:.1f} on {os.cpu_count()} CPUs (server time includes waiting for them)"
        )
        ok = True
        print(f"{'page':<8}{'p95 @' + format(small, ','):>18}{'p95 @' + format(large, ','):>20}{'ratio':>8}"
              f"{'median small/large':>22}  target")  # fmt: skip
        for page in ("queue", "detail"):
            (base, base_med), (big, big_med) = result[(names["small"], page)], result[(names["large"], page)]
            ratio = big / base
            good = big <= TARGET_MS and ratio <= TARGET_RATIO
            ok &= good
            print(f"{page:<8}{base:>15.1f} ms{big:>17.1f} ms{ratio:>8.2f}{base_med:>11.1f}/{big_med:.1f} ms  "
                  f"≤{TARGET_MS:.0f} ms, ≤{TARGET_RATIO} {'OK' if good else 'MISSED'}")  # fmt: skip
        return 0 if ok else 1
    finally:
        use("postgres")
        with connection.cursor() as cur:
            for name in names.values():
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connections["default"].close()
        connections["default"].settings_dict["NAME"] = original
        log(f"dropped {', '.join(names.values())}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
