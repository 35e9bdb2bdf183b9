"""Policies: import + compile + publish of 100k entries (target ≤ 5 s), time from publish to every process
switched (two gunicorn workers and an rqworker), and memory per process for the compiled ruleset at 100k and 1M.

The processes run before the import, so the measured publish includes waiting for them to stage the version.
The switch is measured twice in the same run: first with the publisher's compiled form not shared (no staging:
every process reads the snapshot and compiles it itself once the version is active, as before ``sharing``),
then as deployed (every process loads the compiled form the publisher stored in Redis before the activation and
swaps it in on the announcement). Each switch is counted from the activation (the commit, just before the
announcement: the 1 s target) and from the start of the publish call. Each process reports how it got the
version (``via`` staged or loaded, ``source`` shared or compiled) and the CPU time its listener spent loading it.

Baselines measured in the same run: a plain ``bulk_create`` of the same rows (no parsing, validation, snapshot
or compile), a bare Redis pub/sub round trip, the switch with every process compiling, and the memory of the
uncompiled rule rows as a process decodes them from the version's JSON.
``--quick`` uses 20k entries and 10k/100k for memory.
"""

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "safety_admin.settings")

from bench.common import (
    BENCH_REDIS_URL,
    ROOT,
    child_env,
    free_port,
    fresh_database,
    progress,
    start_gunicorn,
    start_worker,
)

TARGET_IMPORT_SECONDS = 5.0
TARGET_SWITCH_SECONDS = 1.0


def _rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def _terms(n: int) -> list[str]:
    return [f"term{i} word{i % 977}" for i in range(n)]


def memory_child(n: int, blob_path: str = "") -> None:
    """Run in a fresh process: RSS of ``n`` rules, then of the compiled state. Prints one JSON line.

    With ``blob_path``, also writes the state's shared form there (``sharing.encode``) for ``shared_child``."""
    import django

    django.setup()
    import gc

    from safety_admin.policies.runtime import build_state

    base = _rss_mb()
    rows = [[f"bl.bench.{i}", t, "word", "HATE", "medium", "review", "prompt", 8, ""] for i, t in enumerate(_terms(n))]
    snapshot = {
        "format": 1,
        "lists": [{"name": "bench", "builtin": False, "pack": "", "enabled": True, "entries": rows}],
        "profiles": {},
    }
    # A process gets the snapshot decoded from the database's JSON (every value its own string object), not
    # built from shared literals: decode it the same way so the rule objects hold what they would hold there.
    encoded = json.dumps(snapshot)
    del rows, snapshot
    snapshot = json.loads(encoded)
    del encoded
    gc.collect()
    with_rows = _rss_mb()
    started = time.perf_counter()
    # as runtime.load_state_from_db does: the decoded rows are not needed once they are rules
    state = build_state(snapshot, version=1, label="v1", packs={}, consume=True)
    compile_s = time.perf_counter() - started
    del snapshot
    gc.collect()
    unreleased_mb = _rss_mb() - base
    from safety_admin.policies.runtime import release_freed_memory

    release_freed_memory()  # as a process does once it installed what it compiled
    compiled_mb = _rss_mb() - base
    encode_s = 0.0
    if blob_path:
        from safety_admin.policies import sharing

        started = time.perf_counter()
        blob = sharing.encode(state)
        encode_s = time.perf_counter() - started
        Path(blob_path).write_bytes(blob)
    print(
        json.dumps(
            {
                "n": n,
                "rows_mb": with_rows - base,
                "compiled_mb": compiled_mb,
                "unreleased_mb": unreleased_mb,
                "compile_s": compile_s,
                "encode_s": encode_s,
                "rules": state.rule_count,
            }
        )
    )


SWITCHES = 3


def shared_child(blob_path: str) -> None:
    """Run in a fresh process: RSS of the state loaded from its shared form, as a listener loads it (the
    blob's bytes are freed once decoded); then after ``SWITCHES`` switches to a new copy of it, first keeping
    what glibc freed (the baseline), then handing it back after each switch as a process does. One JSON line."""
    import django

    django.setup()
    import gc

    from safety_admin.policies import runtime, sharing

    def load(number: int):
        with runtime.gc_paused():
            blob = Path(blob_path).read_bytes()
            parts = sharing.decode(blob)
            del blob
            loaded = runtime.state_from_parts(parts, version=number, label=f"v{number}")
            del parts
        return loaded

    gc.collect()
    base = _rss_mb()
    started = time.perf_counter()
    state = load(1)
    decode_s = time.perf_counter() - started
    gc.collect()
    shared_mb = _rss_mb() - base
    after = {}
    for released in (False, True):
        for number in range(2, 2 + SWITCHES):
            state = load(number)  # the old state is freed here, once the new one is in place
            gc.collect()
            if released:
                runtime.release_freed_memory()
        after[released] = _rss_mb() - base
    print(
        json.dumps(
            {
                "shared_mb": shared_mb,
                "decode_s": decode_s,
                "rules": state.rule_count,
                "switched_kept_mb": after[False],
                "switched_released_mb": after[True],
            }
        )
    )


def _pubsub_round_trip(url: str, samples: int = 20) -> float:
    """Median time for a Redis PUBLISH to reach a subscriber in another thread (the transport alone)."""
    import redis

    client = redis.Redis.from_url(url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("bench:policies")
    while pubsub.get_message(timeout=0.1) is not None:
        pass
    times = []
    for _ in range(samples):
        sent = time.perf_counter()
        client.publish("bench:policies", "x")
        while pubsub.get_message(timeout=1.0) is None:
            pass
        times.append(time.perf_counter() - sent)
    pubsub.close()
    client.close()
    return sorted(times)[len(times) // 2]


def _post(port: int, key: str, text: str) -> int:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/safety/infer",
        method="POST",
        data=json.dumps({"user_input": text}).encode(),
        headers={"Content-Type": "application/json", "X-API-Key": key},
    )
    try:
        # A fresh process loads and compiles the active version on its first request: that can take a while.
        with urllib.request.urlopen(req, timeout=600) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def _wait_acks(version: int, count: int, timeout: float) -> list[dict] | None:
    from safety_admin.policies.runtime import process_acks

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        acks = process_acks(url=BENCH_REDIS_URL)
        if len(acks) >= count and all(a["version"] == version for a in acks):
            return acks
        time.sleep(0.01)
    return None


def main(argv: list[str]) -> int:
    if "--memory-child" in argv:
        blob = argv[argv.index("--blob") + 1] if "--blob" in argv else ""
        memory_child(int(argv[argv.index("--memory-child") + 1]), blob)
        return 0
    if "--shared-child" in argv:
        shared_child(argv[argv.index("--shared-child") + 1])
        return 0
    import django

    django.setup()
    from django.conf import settings
    from django.db import connections

    quick = "--quick" in argv
    n = 20_000 if quick else 100_000
    mem_sizes = (10_000, 100_000) if quick else (100_000, 1_000_000)
    if not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        print("policies bench needs PostgreSQL (DATABASE_URL=postgres://…); skipped")
        return 0
    ok = True
    name = f"bench_policies_{os.getpid()}"
    settings.REDIS_URL = BENCH_REDIS_URL  # the processes started below listen there
    original = connections["default"].settings_dict["NAME"]
    with fresh_database(name) as url:
        connections["default"].close()
        connections["default"].settings_dict["NAME"] = name
        try:
            ok &= _import_and_switch(n, url)
        finally:
            connections["default"].close()
            connections["default"].settings_dict["NAME"] = original
    ok &= _memory(mem_sizes)
    return 0 if ok else 1


def _figures(acks: list[dict], name: str) -> str:
    return ", ".join(f"{a.get(name, 0):.2f}" for a in sorted(acks, key=lambda a: a["process"]))


def _warm_up(port: int, key: str, version: int | None, timeout: float = 300) -> bool:
    """Send requests until all three processes run (and so follow announcements) and report ``version``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _wait_acks(version, 3, 0.5) is None:
        threads = [threading.Thread(target=_post, args=(port, key, "hello")) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return _wait_acks(version, 3, 1) is not None


def _switched(version, started: float) -> tuple[list[dict], float, float] | None:
    """Every process's report on ``version``, then the last switch counted from the activation (the commit, just
    before the announcement) and from the start of the publish call."""
    acks = _wait_acks(version.number, 3, 600)
    if acks is None:
        return None
    last = max(a["at"] for a in acks)
    return acks, last - version.active_since, last - started


def _staging(version) -> str:
    staging = version.staging
    if not staging["shared"]:
        return "no staging (compiled form not shared)"
    return (
        f"staging: {staging['staged']} of {staging['processes']} live processes staged it "
        f"({staging['reported']} answered) in {staging['wait_s']:.2f} s"
    )


def _import_and_switch(n: int, url: str) -> bool:
    import redis
    from django.conf import settings

    from safety_admin.gateway.services import api_key_create
    from safety_admin.policies import runtime, services
    from safety_admin.policies.models import Blocklist, BlocklistEntry

    # A clean Redis database (the benchmarks' own): jobs an earlier run left queued would keep the worker busy
    # with requests of a dropped database, and it would not serve the warm-up's traffic or report in time.
    client = redis.Redis.from_url(BENCH_REDIS_URL)
    client.flushdb()
    path = Path(tempfile.mkdtemp()) / "bench.txt"
    path.write_text("# bench terms\n" + "\n".join(_terms(n)) + "\n")

    # Baseline: the same rows straight into the table, nothing else.
    progress(f"baseline: bulk_create of {n:,} rows")
    scratch = Blocklist.objects.create(name="scratch")
    started = time.perf_counter()
    BlocklistEntry.objects.bulk_create(
        (BlocklistEntry(blocklist=scratch, pattern=t, reason_code="HATE") for t in _terms(n)), batch_size=5000
    )
    baseline = time.perf_counter() - started
    scratch.delete()

    # The processes run before the import, as in a deployment: the publish waits for them to stage the version.
    progress("starting gunicorn (2 workers) and an rqworker on that database")
    env = child_env(DATABASE_URL=url, POLICY_POLL_SECONDS="2")
    key = api_key_create(name="bench", tier="privileged", profile="", actor_label="bench")[1]
    port = free_port()
    procs = [start_gunicorn(env, port, workers=2), start_worker(env)]
    try:
        progress("warming up: every process serves traffic on the shipped packs and reports it")
        if not _warm_up(port, key, None, timeout=120):
            print("  !! not every process reported the shipped packs; nothing measured")
            return False

        progress(f"import + compile + publish of {n:,} entries (3 live processes stage it)")
        started = time.perf_counter()
        started_wall = time.time()
        report = services.blocklist_import(
            actor_label="bench", list_name="bench", data=path.read_bytes(), filename=path.name, reason_code="HATE"
        )
        imported = time.perf_counter()
        version = services.policy_publish(actor_label="bench", note="bench import")
        total = time.perf_counter() - started
        if report.imported != n or report.errors:
            print(f"  !! import failed: {report.errors[:5]}")
            return False
        print(
            f"  import+compile+publish {n:,} entries: {total:.2f} s (import {imported - started:.2f} s, "
            f"snapshot+compile+publish {total - (imported - started):.2f} s, of which "
            f"{version.staging['wait_s']:.2f} s waiting for the processes to stage it) | target ≤ "
            f"{TARGET_IMPORT_SECONDS} s | baseline bulk_create {baseline:.2f} s | ratio {total / baseline:.1f}x"
        )
        ok = total <= TARGET_IMPORT_SECONDS if n >= 100_000 else True
        first = _switched(version, started_wall)
        if first is None:
            print("  !! not every process switched to the first version; switch time not measured")
            return False
        acks, after_activation, _ = first
        print(
            f"  first version ({n:,} entries) → 3 processes switched {after_activation:.2f} s after the activation"
            f" ({_staging(version)}; per process: via {sorted({a.get('via') for a in acks})}, source "
            f"{sorted({a.get('source') for a in acks})})"
        )

        blocklist = Blocklist.objects.get(name="bench")
        results = {}
        for mode, shared in (("every process compiles", False), ("processes stage the shared form", True)):
            services.entry_create(
                actor_label="bench", blocklist_id=blocklist.pk, pattern=f"one more {mode}", reason_code="HATE"
            )
            progress(f"publishing one more entry ({mode})")
            settings.POLICY_SHARE_COMPILED = shared  # the publisher stores its compiled form, or does not
            started = time.time()
            cpu = time.process_time()
            new = services.policy_publish(actor_label="bench", note=f"one more: {mode}")
            published, publish_cpu = time.time(), time.process_time() - cpu
            switched = _switched(new, started)
            if switched is None:
                print("  !! processes did not switch within 600 s")
                return False
            acks, after_activation, from_start = switched
            results[mode] = (after_activation, from_start)
            print(
                f"  publish → 3 processes switched at {n:,} entries, {mode}: {after_activation:.2f} s after the "
                f"activation, {from_start:.2f} s after the publish call started (call {published - started:.2f} s, "
                f"CPU {publish_cpu:.2f} s; {_staging(new)}; activation {new.active_since - started:.2f} s into the "
                f"call; per process: via {sorted({a.get('via') for a in acks})}, source "
                f"{sorted({a.get('source') for a in acks})}, load {_figures(acks, 'load_s')} s wall, "
                f"{_figures(acks, 'load_cpu_s')} s CPU)"
            )
            if shared and any((a.get("source"), a.get("via")) != ("shared", "staged") for a in acks):
                print("  !! a process did not stage the shared form before the activation")
                ok = False
        settings.POLICY_SHARE_COMPILED = True
        transport = _pubsub_round_trip(BENCH_REDIS_URL)
        switch, from_start = results["processes stage the shared form"]
        baseline, baseline_start = results["every process compiles"]
        met = switch <= TARGET_SWITCH_SECONDS
        print(
            f"  activation → 3 processes switched at {n:,} entries: {switch:.2f} s | target ≤ "
            f"{TARGET_SWITCH_SECONDS} s ({'met' if met else 'missed'}) | from the publish call's start {from_start:.2f}"
            f" s | baseline every process compiling {baseline:.2f} s after the activation ({baseline_start:.2f} s from"
            f" the call's start), pub/sub round trip {transport * 1000:.2f} ms | ratio {switch / baseline:.2f}x"
        )
        if n >= 100_000:
            ok &= met
        runtime.reset()
        return ok
    finally:
        for proc in procs:
            proc.stop()
        client.close()


def _child(*args: str) -> dict | None:
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), *args],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if out.returncode != 0:
        print(f"  !! memory child failed: {out.stderr[-2000:]}")
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def _memory(sizes) -> bool:
    for size in sizes:
        progress(f"memory: compiling {size:,} entries in a fresh process, then loading its shared form in another")
        with tempfile.TemporaryDirectory() as tmp:
            blob = str(Path(tmp) / "state.bin")
            data = _child("--memory-child", str(size), "--blob", blob)
            if data is None:
                return False
            size_mb = Path(blob).stat().st_size / 1e6
            shared = _child("--shared-child", blob)
            if shared is None:
                return False
        print(
            f"  compiled ruleset {size:,} entries: {data['compiled_mb']:.0f} MB per process compiled there "
            f"(compile {data['compile_s']:.1f} s), {shared['shared_mb']:.0f} MB loaded from the shared form "
            f"({size_mb:.0f} MB in Redis, encode {data['encode_s']:.1f} s, decode {shared['decode_s']:.1f} s) "
            f"| baseline uncompiled rule rows {data['rows_mb']:.0f} MB"
            f" | ratio {data['compiled_mb'] / max(data['rows_mb'], 0.1):.1f}x"
        )
        print(
            f"  after {SWITCHES} switches at {size:,} entries: {shared['switched_released_mb']:.0f} MB per process"
            f" handing freed pages back (compiled there: {data['compiled_mb']:.0f} MB)"
            f" | baseline keeping them {shared['switched_kept_mb']:.0f} MB"
            f" (compiled there: {data['unreleased_mb']:.0f} MB)"
            f" | ratio {shared['switched_released_mb'] / max(shared['switched_kept_mb'], 0.1):.2f}x"
        )
    return True


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
