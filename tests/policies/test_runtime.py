"""The runtime: profiles and overlays, fresh-process loading, and keeping the last good policy without Redis."""

import gc
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.conf import settings

from audits.models import AuditEvent
from safety_admin.detectors import check
from safety_admin.policies import runtime, services
from safety_admin.policies.models import PolicyVersion
from safety_admin.policies.profiles import deep_merge, effective_config
from tests.conftest import ROOT, process_env, wait_for
from tests.policies.conftest import free_port

DEAD_REDIS = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there


def test_deep_merge_nested_dicts_merge_and_scalars_replace():
    base = {"lists": {"*": True, "a": True}, "refuse_at": "critical", "actions": {"HATE": "review"}}
    merged = deep_merge(base, {"lists": {"a": False}, "refuse_at": "high"}, {"actions": {"HATE": "refuse"}})
    assert merged == {"lists": {"*": True, "a": False}, "refuse_at": "high", "actions": {"HATE": "refuse"}}
    assert base["lists"] == {"*": True, "a": True}  # inputs are not modified


def test_overlay_order_is_global_then_jurisdiction_then_context():
    config = {
        "refuse_at": "critical",
        "steering_prompt": "global",
        "jurisdictions": {"eu": {"refuse_at": "high", "steering_prompt": "eu"}},
        "contexts": {"kids": {"refuse_at": "low"}, "redteam": {"steering_prompt": "red"}},
    }
    assert effective_config(config)["refuse_at"] == "critical"
    assert effective_config(config, "eu") == {"refuse_at": "high", "steering_prompt": "eu"}
    assert effective_config(config, "eu", "kids") == {"refuse_at": "low", "steering_prompt": "eu"}
    assert effective_config(config, "eu", "redteam") == {"refuse_at": "high", "steering_prompt": "red"}


def _publish_profiles(django_capture_on_commit_callbacks):
    blocklist = services.blocklist_create(actor_label="a", name="words")
    for pattern, severity, action in (
        ("mild", "low", "log"),
        ("middling", "medium", "review"),
        ("harsh", "high", "review"),
    ):
        services.entry_create(
            actor_label="a",
            blocklist_id=blocklist.pk,
            pattern=pattern,
            reason_code="HARASSMENT",
            severity=severity,
            action=action,
        )
    services.profile_save(
        actor_label="a",
        name="public-chat",
        config={
            "refuse_at": "high",
            "review_at": "low",
            "steering_prompt": "be kind",
            "jurisdictions": {"EU": {"refuse_at": "medium"}},
            "contexts": {"kids": {"refuse_at": "low"}, "adults": {"lists": {"words": False}}},
        },
    )
    services.profile_save(
        actor_label="a", name="redteam", config={"min_severity": "high", "actions": {"HARASSMENT": "log"}}
    )
    with django_capture_on_commit_callbacks(execute=True):
        services.policy_publish(actor_label="a", note="profiles")


def _actions(profile, metadata=None):
    ruleset = runtime.active_ruleset(profile, metadata=metadata)
    return tuple(check(word, "prompt", ruleset).action for word in ("mild", "middling", "harsh"))


@pytest.mark.django_db
def test_profiles_pick_lists_and_thresholds_per_request(django_capture_on_commit_callbacks):
    _publish_profiles(django_capture_on_commit_callbacks)
    assert _actions("") == ("log", "review", "review")  # no profile: the default profile, rules as written
    assert _actions("unknown-profile") == ("log", "review", "review")
    assert _actions("public-chat") == ("review", "review", "refuse")
    assert _actions("public-chat", {"jurisdiction": "eu"}) == ("review", "refuse", "refuse")
    assert _actions("public-chat", {"jurisdiction": "EU", "context": "kids"}) == ("refuse", "refuse", "refuse")
    assert _actions("public-chat", {"jurisdiction": "eu", "context": "adults"}) == ("pass", "pass", "pass")
    assert _actions("public-chat", {"jurisdiction": "mars"}) == ("review", "review", "refuse")
    assert _actions("redteam", {"context": "kids"}) == ("pass", "pass", "log")
    # Odd metadata values (not strings, too long) count as absent instead of failing the request.
    assert _actions("public-chat", {"jurisdiction": ["eu"], "context": {"x": 1}}) == ("review", "review", "refuse")
    assert _actions("public-chat", {"jurisdiction": "eu" * 60}) == ("review", "review", "refuse")
    # The client's settings pin overlays; request metadata cannot loosen them.
    assert _actions("public-chat/eu/kids", {"context": "adults"}) == ("refuse", "refuse", "refuse")
    assert runtime.steering_prompt("public-chat") == "be kind"
    assert runtime.steering_prompt("redteam") == settings.SAFETY_STEERING_PROMPT
    assert runtime.current_state().compiled_count == 7  # kids and eu+kids select alike


@pytest.mark.django_db
def test_profile_changes_are_validated_and_audited():
    with pytest.raises(services.PolicyError) as exc:
        services.profile_save(actor_label="a", name="p", config={"refuse_at": "extreme"})
    assert str(exc.value) == "refuse_at must be one of low, medium, high, critical or null"
    with pytest.raises(services.PolicyError) as exc:
        services.profile_save(actor_label="a", name="p", config={"contexts": {"kids": {"contexts": {}}}})
    assert str(exc.value).startswith("unknown profile key 'contexts'")
    services.profile_save(actor_label="a", name="p", config={"refuse_at": "high"})
    services.profile_save(actor_label="b", name="p", config={"refuse_at": "medium"})
    events = AuditEvent.objects.filter(action__startswith="policies.profile").order_by("id")
    assert [(e.action, e.actor_label, e.data["after"]["config"]) for e in events] == [
        ("policies.profile.created", "a", {"refuse_at": "high"}),
        ("policies.profile.changed", "b", {"refuse_at": "medium"}),
    ]


def test_gc_pause_nests_across_threads_and_restores_the_collector():
    assert gc.isenabled()
    inside, release = threading.Event(), threading.Event()

    def other():
        with runtime.gc_paused():
            inside.set()
            release.wait(5)

    thread = threading.Thread(target=other)
    with runtime.gc_paused():
        thread.start()
        inside.wait(5)
        with runtime.gc_paused():
            assert not gc.isenabled()
    assert not gc.isenabled()  # the other thread's pause is still running
    release.set()
    thread.join(5)
    assert gc.isenabled()
    gc.disable()
    try:
        runtime.build_state(runtime.default_snapshot(), version=None, label="b")
        assert not gc.isenabled()  # a collector someone else turned off stays off
    finally:
        gc.enable()


def test_consuming_build_drops_the_entry_rows_and_compiles_the_same():
    rows = [["bl.x.1", "walrus", "word", "HATE", "high", "refuse", "prompt", 8, ""]]
    kept = {"lists": [{"name": "x", "entries": [list(r) for r in rows]}]}
    consumed = {"lists": [{"name": "x", "entries": [list(r) for r in rows]}]}
    a = runtime.build_state(kept, version=1, label="v1", packs={})
    b = runtime.build_state(consumed, version=1, label="v1", packs={}, consume=True)
    assert kept["lists"][0]["entries"] == rows
    assert "entries" not in consumed["lists"][0]
    assert a.lookup("")[0].rules == b.lookup("")[0].rules
    assert check("a walrus", "prompt", b.lookup("")[0]).action == "refuse"


def _rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


@pytest.mark.skipif(runtime._malloc_trim is None, reason="not glibc: malloc_trim does not exist here")
def test_the_pages_of_replaced_rulesets_go_back_to_the_operating_system():
    from safety_admin.policies import sharing

    rows = [
        [f"bl.m.{i}", f"term{i} word{i % 977}", "word", "HATE", "medium", "review", "prompt", 8, ""]
        for i in range(30_000)
    ]
    built = runtime.build_state({"lists": [{"name": "m", "entries": rows}]}, version=1, label="v1", packs={})
    blob = bytes(sharing.encode(built))
    del built
    state = None
    for number in range(1, 5):  # as a listener switches: load the next version beside, then drop the old one
        state = runtime.state_from_parts(sharing.decode(blob), version=number, label=f"v{number}")
    gc.collect()
    kept = _rss_mb()
    runtime.release_freed_memory()
    # three freed copies of a 30k-entry ruleset (~8 MB of automatons each) held in glibc's heap: measured 25 MB
    assert kept - _rss_mb() > 5
    assert check("say term7 word7 now", "prompt", state.lookup("")[0]).action == "review"  # the live one is intact


@pytest.mark.parametrize("fast", [True, False])
def test_rules_from_entry_rows_are_the_rules_their_constructor_makes(monkeypatch, fast):
    from dataclasses import FrozenInstanceError

    from safety_admin.detectors import Rule

    monkeypatch.setattr(runtime, "_ROWS_FAST", fast)
    rows = [["bl.x.1", "walrus", "word", "HATE", "high", "refuse", "prompt", 8, "a note"],
            ["bl.x.2", "okapi ~ zoo", "proximity", "HATE", "low", "log", "both", 3, ""]]  # fmt: skip
    made = runtime.snapshot_rules({"lists": [{"name": "x", "entries": rows}]}, packs={})["x"]
    expected = [
        Rule(rule_id="bl.x.1", pattern="walrus", match_type="word", reason_code="HATE", severity="high",
             action="refuse", direction="prompt", window=8, note="a note"),
        Rule(rule_id="bl.x.2", pattern="okapi ~ zoo", match_type="proximity", reason_code="HATE", severity="low",
             action="log", direction="both", window=3, note=""),
    ]  # fmt: skip
    assert made == expected
    assert [hash(r) for r in made] == [hash(r) for r in expected]
    assert [(r.prefilter, r.weight) for r in made] == [("", 0), ("", 0)]
    with pytest.raises(FrozenInstanceError):
        made[0].pattern = "changed"
    with pytest.raises(ValueError, match="shorter"):  # a row of the wrong shape fails the build
        runtime.snapshot_rules({"lists": [{"name": "x", "entries": [rows[0][:8]]}]}, packs={})


@pytest.mark.django_db
def test_fresh_process_loads_builtin_packs_then_the_active_version():
    ruleset = runtime.active_ruleset()
    assert ruleset.version == runtime.BUILTIN_LABEL
    assert len(ruleset.rules) == sum(len(rules) for rules in runtime.load_packs().values())
    services.policy_publish(actor_label="a", note="baseline")
    runtime.reset()  # as a process starting now
    assert runtime.active_ruleset().version == "v1"


@pytest.mark.django_db(transaction=True)
def test_redis_down_during_publish_keeps_last_good_then_converges(settings, redis_client):
    settings.POLICY_POLL_SECONDS = 0.5
    good_url = settings.REDIS_URL
    blocklist = services.blocklist_create(actor_label="a", name="words")
    services.policy_publish(actor_label="a", note="v1")
    assert runtime.active_ruleset().version == "v1"
    listener = runtime.PolicyListener(DEAD_REDIS)
    listener.start()
    try:
        services.entry_create(
            actor_label="a", blocklist_id=blocklist.pk, pattern="okapi", reason_code="HATE", action="refuse"
        )
        settings.REDIS_URL = DEAD_REDIS
        version = services.policy_publish(actor_label="a", note="v2 while Redis is down")
        # The database holds the truth; the announcement failed and says so.
        assert (version.number, version.announced) == (2, False)
        assert list(PolicyVersion.objects.filter(is_active=True).values_list("number", flat=True)) == [2]
        assert AuditEvent.objects.filter(action="policies.version.published", subject_id=str(version.pk)).count() == 1
        # A process whose listener cannot reach Redis keeps serving its last good policy. (This test process
        # published, which swapped it; put it back on v1 to play every other process, which heard nothing.)
        runtime.install(runtime.build_state(PolicyVersion.objects.get(number=1).snapshot, version=1, label="v1"))
        wait_for(lambda: listener.errors >= 2, timeout=10, message="the listener to fail twice")
        assert runtime.active_ruleset().version == "v1"
        assert check("okapi", "prompt", runtime.active_ruleset()).action == "pass"
    finally:
        listener.stop()
    # Redis answers again: the listener re-reads the database, swaps, and repairs the stale key.
    settings.REDIS_URL = good_url
    redis_client.set(runtime.ACTIVE_KEY, 1)
    listener = runtime.PolicyListener(settings.REDIS_URL)
    listener.start()
    try:
        wait_for(lambda: runtime.active_ruleset().version == "v2", timeout=10, message="the swap to v2")
        assert check("okapi", "prompt", runtime.active_ruleset()).action == "refuse"
        wait_for(lambda: redis_client.get(runtime.ACTIVE_KEY) == b"2", timeout=10, message="the key repaired")
    finally:
        listener.stop()


def test_a_staged_state_is_taken_only_for_its_own_version_row():
    state = runtime.build_state(runtime.default_snapshot(), version=3, label="v3")
    state.identity = "3:41:1700000000.000000"
    runtime._set_staged(state)
    # Same number, another row (a publish that rolled back, then another one): not this staged state.
    assert runtime.take_staged("3:42:1700000009.000000") is None
    assert runtime.take_staged(state.identity) is state
    assert runtime.take_staged(state.identity) is None


@pytest.mark.django_db(transaction=True)
def test_publish_waits_for_live_processes_to_stage_but_only_so_long(settings, redis_client):
    settings.POLICY_STAGE_WAIT_SECONDS = 0.5
    services.blocklist_create(actor_label="a", name="words")
    services.policy_publish(actor_label="a", note="v1")
    services.profile_save(actor_label="a", name="strict", config={"steering_prompt": "be strict"})
    now = time.time()
    # One live process that never answers (stuck, or died a moment ago) and one gone long ago (its key not expired).
    for name, at in (("stuck:1", now), ("gone:2", now - 60)):
        runtime.report_process(redis_client, f"{runtime.PROC_PREFIX}{name}", {"process": name, "at": at, "poll_s": 5},
                               ttl=120)  # fmt: skip
    # A listed process whose report expired is dropped from the list, not waited for.
    redis_client.sadd(runtime.PROC_SET, f"{runtime.PROC_PREFIX}expired:3")

    started = time.monotonic()
    version = services.policy_publish(actor_label="a", note="v2")
    took = time.monotonic() - started

    assert {k: version.staging[k] for k in ("shared", "processes", "staged", "reported")} == {
        "shared": True,
        "processes": 1,
        "staged": 0,
        "reported": 0,
    }
    assert 0.5 <= version.staging["wait_s"] < 0.5 + 1.0
    assert took < 0.5 + 5.0
    # The version is active anyway; the stuck process would load it on activation.
    assert (version.number, version.announced) == (2, True)
    assert list(PolicyVersion.objects.filter(is_active=True).values_list("number", flat=True)) == [2]
    assert redis_client.get(runtime.ACTIVE_KEY) == b"2"
    assert runtime.active_ruleset().version == "v2"
    assert redis_client.smembers(runtime.PROC_SET) == {
        f"{runtime.PROC_PREFIX}stuck:1".encode(),
        f"{runtime.PROC_PREFIX}gone:2".encode(),
    }


@pytest.mark.django_db(transaction=True)
def test_listener_stages_a_version_published_elsewhere_then_swaps_it_in_on_activation(settings):
    settings.POLICY_POLL_SECONDS = 0.5
    blocklist = services.blocklist_create(actor_label="a", name="words")
    services.policy_publish(actor_label="a", note="v1")
    runtime.reset()
    assert runtime.current_state().version == 1  # as a running process: v1, from the shared form
    listener = runtime.PolicyListener(settings.REDIS_URL)
    listener.start()
    try:
        wait_for(lambda: _report(1), timeout=10, message="the listener's first report")
        services.entry_create(
            actor_label="a", blocklist_id=blocklist.pk, pattern="okapi", reason_code="HATE", action="refuse"
        )
        runtime.load_counts.clear()
        # Another process publishes: this one must load v2 before it is active, and only swap it in after.
        out = subprocess.run(
            [sys.executable, "manage.py", "publish_policy", "--note", "v2 from elsewhere"],
            cwd=ROOT,
            env=process_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        report = wait_for(lambda: _report(2), timeout=10, message="the swap to v2")
        assert (report["source"], report["via"], report["staged_ok"]) == ("shared", "staged", True)
        assert runtime.load_counts == {"staged": 1}  # loaded once, before the activation; nothing loaded after
        assert check("okapi", "prompt", runtime.active_ruleset()).action == "refuse"
        assert runtime._staged is None
    finally:
        listener.stop()


def _report(version: int) -> dict | None:
    reports = [a for a in runtime.process_acks() if a["version"] == version]
    return reports[0] if reports else None
