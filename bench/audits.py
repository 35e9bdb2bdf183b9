"""Audit trail: sustained append rate with the hash chain (4 writer processes on PostgreSQL) and full verification.

Baselines measured in the same run: the same rows by plain INSERTs into an unchained copy of the table, and a
plain read of every row without hashing. Targets (issue 6): append >= 2,000 events/s; verify 1,000,000 <= 10 s.
Uses its own database (``bench_audits``), created and dropped here. ``--quick``: fewer events.

Sealing runs as in production (``AUDIT_SEALER=workers``, the default outside tests: the writers only insert,
and an RQ worker process chains what is pending every ``AUDIT_SEAL_SECONDS``), on the same cores, and the
append clock stops only once every event is chained.
"""

import multiprocessing
import os
import resource
import secrets
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "safety_admin.settings")

WRITERS = 4
DB_NAME = "bench_audits"
APPEND_TARGET = 2000.0
VERIFY_TARGET_SECONDS = 10.0


def _data(i: int) -> dict:
    hit = {"rule_id": f"weapons.{i % 50}", "severity": "high", "span": [3, 17], "view": "casefold"}
    return {"status": "refused", "principal": "u_0123456789abcdef", "reason_code": "HIGH_RISK_WEAPON", "hits": [hit]}


def _tag_connections(name: str) -> None:
    """Label this process's connections (its sealer thread's too) so their backends can be found for CPU."""
    from django.db import connections

    connections.close_all()
    connections["default"].settings_dict.setdefault("OPTIONS", {})["application_name"] = name


def _backend_cpu(name: str) -> float:
    """CPU seconds of the PostgreSQL backends whose connections are labelled ``name``."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s", [name])
        pids = [row[0] for row in cursor.fetchall()]
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:  # PostgreSQL on another host, or the backend just ended
            total += float("nan")
    return total


def _cpu_seconds(name: str) -> tuple[float, float]:
    """(this process, its PostgreSQL backends) CPU seconds: the cost per event, whatever else loads the machine.

    The backends are every connection labelled ``name``: the writer's own (and its sealer thread's, if any).
    """
    return time.process_time(), _backend_cpu(name)


def _chained_writer(args) -> tuple[float, float, float]:
    """One process: ``count`` events, one transaction each, through the real service; returns once all are chained."""
    count, start_at, writer = args
    from django.db import connections, transaction

    from audits import sealer
    from audits.services import audit_event_record

    name = f"bench-chained-{writer}"
    _tag_connections(name)
    while time.time() < start_at:
        time.sleep(0.001)
    cpu_before = _cpu_seconds(name)
    began = time.perf_counter()
    for i in range(count):
        with transaction.atomic():
            audit_event_record(
                action="gateway.request.refused",
                actor_label="gateway",
                subject_type="inference.request",
                subject_id=secrets.token_hex(16),
                subject_repr="request from u_0123456789abcdef",
                request_id=secrets.token_hex(16),
                trace_id=secrets.token_hex(16),
                data=_data(i),
                principal_id="apikey:0123abcd",
            )
    sealer.wait_idle(60)  # this process's events chained (by its own sealer or another process's)
    elapsed = time.perf_counter() - began
    cpu_after = _cpu_seconds(name)
    sealer.release_connection()
    connections.close_all()
    return elapsed, cpu_after[0] - cpu_before[0], cpu_after[1] - cpu_before[1]


def _plain_writer(args) -> tuple[float, float, float]:
    """One process: the same rows as plain INSERTs (one transaction each, like the chained writer) into a copy."""
    count, start_at, writer = args
    from django.db import connection, connections, transaction

    from audits.chain import canonical_json

    name = f"bench-plain-{writer}"
    _tag_connections(name)
    while time.time() < start_at:
        time.sleep(0.001)
    cpu_before = _cpu_seconds(name)
    began = time.perf_counter()
    sql = ("INSERT INTO bench_plain (seq, ticket_id, created_at, actor_label, action, subject_type, subject_id,"
           " subject_repr, request_id, trace_id, principal_pseudonym, principal_ciphertext, data, prev_hash, hash)"
           " VALUES (%s, %s, now(), 'gateway', 'gateway.request.refused', 'inference.request', %s, %s, %s, %s,"
           " 'u_0123456789abcdef', '', %s, %s, %s)")  # fmt: skip
    with connection.cursor() as cursor:
        for i in range(count):
            params = [writer * 10_000_000 + i, f"audit-{secrets.token_hex(10)}", secrets.token_hex(16),
                      "request from u_0123456789abcdef", secrets.token_hex(16), secrets.token_hex(16),
                      canonical_json(_data(i)), "0" * 64, secrets.token_hex(32)]  # fmt: skip
            with transaction.atomic():
                cursor.execute(sql, params)
    elapsed = time.perf_counter() - began
    cpu_after = _cpu_seconds(name)
    connections.close_all()
    return elapsed, cpu_after[0] - cpu_before[0], cpu_after[1] - cpu_before[1]


class _SealingWorker:
    """A real ``rqworker`` (SafetyWorker) on a queue nobody fills: all it does is chain audit events."""

    def __init__(self):
        import subprocess

        from django.db import connection

        from bench.common import ROOT, child_env

        db = connection.settings_dict
        url = f"postgresql://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
        env = child_env(DATABASE_URL=url, AUDIT_SEALER="workers", PGAPPNAME="bench-sealer")
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "rqworker", "default", "--worker-class",
             "safety_admin.inference.worker.SafetyWorker"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(2.0)  # Django set up and the ticker running before the writers start
        if self.proc.poll() is not None:
            raise SystemExit("the sealing worker did not start (run it by hand: manage.py rqworker default)")
        self.started = (self.cpu_seconds(), _backend_cpu("bench-sealer"))  # start-up is not per-event cost

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> tuple[float, float]:
        """(the worker's CPU seconds, its PostgreSQL backends' CPU seconds) since the writers started."""
        cpu = self.cpu_seconds() - self.started[0]
        server = _backend_cpu("bench-sealer") - self.started[1]
        self.proc.terminate()
        self.proc.wait(15)
        return cpu, server


def _run_writers(func, per_writer: int) -> tuple[float, float, float]:
    """(wall seconds from the common start to the last writer's end, writer CPU, backend CPU)."""
    from django.db import connections

    connections.close_all()
    start_at = time.time() + 0.5  # every writer process is up by then; they all start together
    tasks = [(per_writer, start_at, w) for w in range(WRITERS)]
    with multiprocessing.get_context("fork").Pool(WRITERS) as pool:
        outcomes = pool.map(func, tasks)
        ended = time.time()
    return ended - start_at, sum(o[1] for o in outcomes), sum(o[2] for o in outcomes)


def _wait_chained(total: int, timeout: float) -> int:
    from django.db import connection

    deadline = time.monotonic() + timeout
    while True:
        with connection.cursor() as cursor:
            cursor.execute("SELECT COUNT(seq) FROM audits_auditevent")
            chained = cursor.fetchone()[0]
        if chained >= total or time.monotonic() > deadline:
            return chained
        time.sleep(0.01)


def bench_append(per_writer: int) -> None:
    from django.conf import settings
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_plain")
        cursor.execute("CREATE TABLE bench_plain (LIKE audits_auditevent INCLUDING DEFAULTS INCLUDING IDENTITY"
                       " INCLUDING INDEXES)")  # fmt: skip
    total = per_writer * WRITERS
    print(f"  appending {total} events with {WRITERS} writer processes (plain INSERT baseline first)...", flush=True)
    figures = {}
    # make bench runs with SAFETY_ENV=test, whose default seals synchronously: measure the production default
    # (the forked writers inherit it), with a real worker process doing the chaining.
    in_mode, settings.AUDIT_SEALER = settings.AUDIT_SEALER, "workers"
    for name, func in (("plain INSERT", _plain_writer), ("chained", _chained_writer)):
        sealing = _SealingWorker() if func is _chained_writer else None
        try:
            wall, client, server = _run_writers(func, per_writer)
            if sealing:  # the clock runs until the worker has chained every event
                began = time.perf_counter()
                chained = _wait_chained(total, timeout=120)
                wall += time.perf_counter() - began
        finally:
            sealer_cpu = sealing.stop() if sealing else (0.0, 0.0)
        client, server = client + sealer_cpu[0], server + sealer_cpu[1]
        if sealing and chained != total:
            raise SystemExit(f"expected {total} chained events, the worker chained {chained}")
        figures[name] = (total / wall, (client + server) / total * 1000, client / total * 1000)
    settings.AUDIT_SEALER = in_mode
    (rate, cpu, client), (plain_rate, plain_cpu, plain_client) = figures["chained"], figures["plain INSERT"]
    verdict = "OK" if rate >= APPEND_TARGET else "MISSED"
    print(f"append, chained ({WRITERS} writers): {rate:,.0f} events/s   plain INSERT: {plain_rate:,.0f} rows/s   "
          f"ratio {rate / plain_rate:.2f}   target >= {APPEND_TARGET:,.0f}/s: {verdict}")  # fmt: skip
    cores = os.cpu_count() or 1
    print(f"  load average while measuring: {os.getloadavg()[0]:.1f} on {cores} cores")
    ceiling, plain_ceiling = cores / cpu * 1000, cores / plain_cpu * 1000
    print(f"  CPU per event (writer process + its PostgreSQL backends, sealing included): chained {cpu:.2f} ms "
          f"(writer {client:.2f} ms), plain {plain_cpu:.2f} ms (writer {plain_client:.2f} ms)   -> CPU-bound "
          f"ceiling on {cores} idle cores: chained {ceiling:,.0f}/s, plain {plain_ceiling:,.0f}/s (disk flushes "
          "and the sealing lock not counted)")  # fmt: skip


def _generate(count: int) -> None:
    """Append ``count`` chained events straight into the table with COPY (hashes computed here, as the service does)."""
    from datetime import UTC, datetime, timedelta

    from django.db import connection

    from audits import signing
    from audits.chain import canonical_json, canonical_time, checkpoint_message, event_hash

    with connection.cursor() as cursor:
        cursor.execute("SELECT seq, hash FROM audits_auditevent ORDER BY seq DESC LIMIT 1")
        seq, prev = cursor.fetchone()
    base = datetime.now(UTC)
    public = signing.public_key_hex()
    columns = ("seq, prev_hash, hash, ticket_id, created_at, actor_id, actor_label, action, subject_type, subject_id,"
               " subject_repr, request_id, trace_id, principal_pseudonym, principal_ciphertext, data")  # fmt: skip
    checkpoints = []
    raw = connection.cursor().cursor
    done = 0
    with raw.copy(f"COPY audits_auditevent ({columns}) FROM STDIN") as copy:
        for i in range(count):
            seq += 1
            created = base + timedelta(microseconds=i)
            data = canonical_json(_data(i))
            values = (seq, prev, f"audit-{i:020x}", canonical_time(created), None, "gateway", "gateway.request.refused",
                      "inference.request", f"{i:032x}", "request from u_0123456789abcdef", f"{i:032x}",
                      f"{i:032x}", "u_0123456789abcdef", data)  # fmt: skip
            digest = event_hash(values)
            copy.write_row((seq, prev, digest, values[2], created, None, *values[5:13], "", data))
            prev = digest
            if seq % 1000 == 0:
                stamp = canonical_time(created)
                checkpoints.append((seq, digest, created, public, signing.sign(checkpoint_message(seq, digest, stamp))))
            done += 1
            if done % 200_000 == 0:
                print(f"    generated {done}/{count}", flush=True)
    with connection.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO audits_auditcheckpoint (seq, head_hash, created_at, public_key, signature)"
            " VALUES (%s, %s, %s, %s, %s)",
            checkpoints,
        )
        cursor.execute("ANALYZE audits_auditevent")


def _plain_scan() -> tuple[float, float]:
    """The verifier's own read (one process), lines fetched and dropped: (wall, CPU) seconds."""
    from django.db import connection

    from audits.verify import _copy_lines, scan_sql

    started, cpu = time.perf_counter(), time.process_time()
    with connection.cursor() as cursor:
        cursor.execute("SELECT MAX(seq) FROM audits_auditevent")
        last = cursor.fetchone()[0]
    for _line in _copy_lines(scan_sql(1, last)):
        pass
    return time.perf_counter() - started, time.process_time() - cpu


def _own_and_children_cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def bench_verify(target_events: int):
    from django.db import connection

    from audits.verify import default_jobs, verify_chain

    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM audits_auditevent")
        have = cursor.fetchone()[0]
    print(f"  generating {target_events - have} more chained events with COPY...", flush=True)
    _generate(target_events - have)
    print("  plain read of every row (baseline)...", flush=True)
    scan = _plain_scan()
    results = {}
    # One process, then what `manage.py verify_audit_chain` does by default (a process per available core).
    for jobs in dict.fromkeys((1, default_jobs())):
        print(f"  verify_chain(jobs={jobs})...", flush=True)
        cpu = _own_and_children_cpu()
        result = verify_chain(jobs=jobs)
        if not result.ok:
            raise SystemExit(f"chain did not verify: {result.problem} at {result.first_bad_seq}")
        results[jobs] = (result, _own_and_children_cpu() - cpu)
    return results, scan


def main(argv: list[str]) -> int:
    import django

    django.setup()
    from django.db import connection

    from audits.verify import default_jobs

    if connection.vendor != "postgresql":
        print("bench/audits.py needs PostgreSQL (DATABASE_URL); skipped")
        return 1
    quick = "--quick" in argv
    per_writer = 500 if quick else 3000
    verify_events = 100_000 if quick else 1_000_000
    old_name = connection.settings_dict["NAME"]
    connection.settings_dict.setdefault("TEST", {})["NAME"] = DB_NAME
    print(f"creating database {DB_NAME}...", flush=True)
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        bench_append(per_writer)
        results, scan = bench_verify(verify_events)
        scan_wall, scan_cpu = scan
        print(f"  load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        for jobs, (result, cpu) in results.items():
            per_million = result.seconds * 1_000_000 / result.events
            verdict = "OK" if per_million <= VERIFY_TARGET_SECONDS else "MISSED"
            label = f"jobs={jobs}" + (" (the command's default)" if jobs == default_jobs() else "")
            print(f"verify {result.events:,} events, {result.checkpoints} checkpoints, {label}: "
                  f"{result.seconds:.2f} s (verifier CPU {cpu:.2f} s)   plain read of the same rows: {scan_wall:.2f} s "
                  f"(CPU {scan_cpu:.2f} s)   ratio {result.seconds / scan_wall:.2f}   "
                  f"({per_million:.1f} s per million; target <= {VERIFY_TARGET_SECONDS:.0f} s: {verdict})")  # fmt: skip
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
