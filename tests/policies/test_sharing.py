"""The compiled state shared through Redis: loaded instead of compiled when it is usable, refused otherwise."""

import json
import pickle
from array import array

import pytest

from safety_admin.detectors import check
from safety_admin.policies import runtime, services, sharing
from safety_admin.policies.models import PolicyVersion
from tests.policies.conftest import free_port

pytestmark = pytest.mark.django_db(transaction=True)

DEAD_REDIS = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
TEXTS = ("a walrus here", "an okapi", "the narwhal", "hello there", "a WALRUS and an okapi")


@pytest.fixture(autouse=True)
def share_dir(settings, tmp_path):
    """Each test's own same-host directory (the default is one per user, shared by every run on the host)."""
    settings.POLICY_SHARE_DIR = str(tmp_path / "share")
    return tmp_path / "share"


def _file_of(redis_client, version: PolicyVersion, share_dir):
    manifest = json.loads(redis_client.get(sharing.manifest_key(version.number)))
    return sharing.blob_path(share_dir, manifest["blob"])


def _publish_two_profiles() -> PolicyVersion:
    blocklist = services.blocklist_create(actor_label="a", name="animals")
    for pattern, severity, action in (
        ("walrus", "low", "log"),
        ("okapi", "high", "review"),
        ("narwhal", "medium", "refuse"),
    ):
        services.entry_create(
            actor_label="a",
            blocklist_id=blocklist.pk,
            pattern=pattern,
            reason_code="HATE",
            severity=severity,
            action=action,
        )
    services.profile_save(
        actor_label="a",
        name="strict",
        config={"refuse_at": "medium", "steering_prompt": "be strict", "contexts": {"kids": {"refuse_at": "low"}}},
    )
    return services.policy_publish(actor_label="a", note="animals")


def _publish_one_more(note: str) -> PolicyVersion:
    blocklist = services.blocklist_create(actor_label="a", name=f"more-{PolicyVersion.objects.count()}")
    services.entry_create(actor_label="a", blocklist_id=blocklist.pk, pattern="dugong", reason_code="HATE")
    return services.policy_publish(actor_label="a", note=note)


def _fresh_load() -> runtime.PolicyState:
    """What a process starting now loads."""
    runtime.reset()
    runtime.load_counts.clear()
    return runtime.current_state()


def _assert_same_decisions(a: runtime.PolicyState, b: runtime.PolicyState) -> None:
    assert set(a.routes) == set(b.routes)
    for key in a.routes:
        (ra, pa), (rb, pb) = a.routes[key], b.routes[key]
        assert (ra.rules, ra.version, pa) == (rb.rules, rb.version, pb)
        for text in TEXTS:
            for direction in ("prompt", "output"):
                va, vb = check(text, direction, ra), check(text, direction, rb)
                assert (va.action, [h.rule_id for h in va.hits]) == (vb.action, [h.rule_id for h in vb.hits])


def test_published_version_is_stored_and_a_fresh_process_loads_it_without_compiling():
    version = _publish_two_profiles()
    assert (version.shared, version.announced) == (True, True)
    compiled = runtime.build_state(version.snapshot, version=version.number, label=version.label)
    state = _fresh_load()
    assert (state.source, state.version, state.label) == ("shared", version.number, "v1")
    assert runtime.load_counts == {"shared": 1}
    assert state.compiled_count == compiled.compiled_count == 3  # default, strict, strict+kids
    _assert_same_decisions(compiled, state)
    assert runtime.steering_prompt("strict") == "be strict"
    assert check("the okapi", "prompt", runtime.active_ruleset("strict")).action == "refuse"
    # Profiles that select alike still share one compiled ruleset, and every ruleset the same rule objects.
    strict, kids = state.lookup("strict")[0], state.lookup("strict", "", "kids")[0]
    assert strict is not kids
    narwhal = [r for r in strict.rules if r.pattern == "narwhal"]  # refused by both: one object
    assert narwhal == [r for r in kids.rules if r.pattern == "narwhal"]
    assert narwhal[0] is next(r for r in kids.rules if r.pattern == "narwhal")
    assert state.lookup("")[0] is state.lookup("default")[0]


def test_a_loaded_state_makes_only_the_rules_its_checks_hit():
    version = _publish_two_profiles()
    state = _fresh_load()
    assert state.source == "shared"
    ruleset = state.lookup("strict")[0]
    store = ruleset.rules._store  # shared by every ruleset of the state
    assert store.made == {}  # loading made no Rule objects
    assert check("the narwhal", "prompt", ruleset).action == "refuse"
    assert {rule.pattern for rule in store.made.values()} == {"narwhal"}
    compiled = runtime.build_state(version.snapshot, version=version.number, label=version.label)
    assert ruleset.rules == compiled.lookup("strict")[0].rules  # the same rules, in the same order
    assert ruleset.rules[-1] is ruleset.rules[len(ruleset.rules) - 1]
    assert ruleset.rules[:2] == tuple(ruleset.rules)[:2]


def test_a_tampered_blob_is_refused_and_the_process_compiles(redis_client, caplog, share_dir):
    version = _publish_two_profiles()
    manifest = json.loads(redis_client.get(sharing.manifest_key(version.number)))
    redis_client.setrange(sharing.chunk_key(manifest["blob"], 0), 100, b"\x00")
    _file_of(redis_client, version, share_dir).unlink()  # as a process on another host: Redis only
    state = _fresh_load()
    assert (state.source, state.version) == ("compiled", version.number)
    assert runtime.load_counts == {"refused: bad MAC": 1, "compiled": 1}
    assert any(getattr(r, "reason", "") == "bad MAC" and r.levelname == "WARNING" for r in caplog.records)
    assert check("the narwhal", "prompt", runtime.active_ruleset()).action == "refuse"


def test_a_blob_signed_with_another_secret_is_refused(settings):
    version = _publish_two_profiles()
    settings.SECRET_KEY = "another-secret-" + "x" * 50
    assert _fresh_load().source == "compiled"
    assert runtime.load_counts["refused: bad MAC"] == 1
    assert version.shared


@pytest.mark.parametrize("lost", ["chunk", "manifest"])
def test_a_missing_blob_falls_back_to_compiling(redis_client, lost, settings):
    version = _publish_two_profiles()
    key = sharing.manifest_key(version.number)
    manifest = json.loads(redis_client.get(key))
    redis_client.delete(sharing.chunk_key(manifest["blob"], 0) if lost == "chunk" else key)
    settings.POLICY_SHARE_DIR = ""  # as a process on another host
    state = _fresh_load()
    assert (state.source, state.version) == ("compiled", version.number)
    assert runtime.load_counts == {"refused: missing": 1, "compiled": 1}


def test_a_process_running_other_code_compiles(monkeypatch):
    version = _publish_two_profiles()
    monkeypatch.setattr(sharing, "CODE_FINGERPRINT", "0" * 32)  # as a process on another deploy
    state = _fresh_load()
    assert (state.source, state.version) == ("compiled", version.number)
    assert runtime.load_counts == {"refused: missing": 1, "compiled": 1}


def test_a_manifest_of_other_code_or_another_database_is_refused(redis_client):
    version = _publish_two_profiles()
    identity = sharing.identity_of(version.pk, version.number, version.created_at)
    assert sharing.fetch(redis_client, number=version.number, identity=identity)
    with pytest.raises(sharing.Unavailable, match="another database"):
        sharing.fetch(redis_client, number=version.number, identity=identity + "0")
    key = sharing.manifest_key(version.number)
    manifest = json.loads(redis_client.get(key))
    redis_client.set(key, json.dumps({**manifest, "fingerprint": "0" * 32}))
    with pytest.raises(sharing.Unavailable, match="different code"):
        sharing.fetch(redis_client, number=version.number, identity=identity)
    # Editing any signed field of the manifest breaks the MAC, even with the right key and size.
    redis_client.set(key, json.dumps({**manifest, "label": "v9"}))
    with pytest.raises(sharing.Unavailable, match="bad MAC"):
        sharing.fetch(redis_client, number=version.number, identity=identity)


def test_redis_down_the_process_compiles_and_publishing_still_works(settings):
    version = _publish_two_profiles()
    settings.REDIS_URL = DEAD_REDIS
    state = _fresh_load()
    assert (state.source, state.version) == ("compiled", version.number)
    assert runtime.load_counts == {"refused: Redis": 1, "compiled": 1}
    again = _publish_one_more("while Redis is down")
    assert (again.shared, again.announced) == (False, False)
    assert runtime.active_ruleset().version == "v2"


def test_large_blobs_go_in_chunks_and_only_the_newest_is_kept(redis_client, monkeypatch):
    monkeypatch.setattr(sharing, "CHUNK_BYTES", 4096)
    first = _publish_two_profiles()
    old = json.loads(redis_client.get(sharing.manifest_key(first.number)))
    assert old["chunks"] > 3
    second = _publish_one_more("one more")
    new = json.loads(redis_client.get(sharing.manifest_key(second.number)))
    assert redis_client.get(sharing.manifest_key(first.number)) is None
    assert not redis_client.exists(*[sharing.chunk_key(old["blob"], i) for i in range(old["chunks"])])
    assert redis_client.exists(*[sharing.chunk_key(new["blob"], i) for i in range(new["chunks"])]) == new["chunks"]
    assert 0 < redis_client.ttl(sharing.chunk_key(new["blob"], 0)) <= sharing.TTL_SECONDS
    assert _fresh_load().source == "shared"
    # A rollback stores its version again.
    services.policy_rollback(actor_label="a")
    state = _fresh_load()
    assert (state.source, state.version) == ("shared", first.number)


def test_a_state_that_cannot_be_encoded_is_not_shared_and_processes_compile(monkeypatch, caplog):
    def unpicklable(state):
        raise TypeError("cannot pickle 'function' object")  # e.g. a classifier that is a lambda

    monkeypatch.setattr(sharing, "encode", unpicklable)
    version = _publish_two_profiles()
    assert (version.shared, version.announced) == (False, True)
    assert any(getattr(r, "event", "") == "policies.share_failed" for r in caplog.records)
    monkeypatch.undo()
    state = _fresh_load()
    assert (state.source, state.version) == ("compiled", version.number)
    assert runtime.load_counts == {"refused: missing": 1, "compiled": 1}


@pytest.mark.parametrize("broken", ["short column", "index out of range"])
def test_decode_refuses_rule_columns_that_would_fail_later(broken):
    # Rules are made during checks, so decode checks up front what making them needs (a MAC'd blob is ours;
    # this guards against a bug in encode, not an attacker).
    columns = [("r1", "r2")] * len(sharing._RULE_FIELDS)
    indexes = array("q", [0, 1])
    if broken == "short column":
        columns[1] = ("only one",)
    else:
        indexes.append(2)
    payload = {
        "format": sharing.FORMAT,
        "rule_fields": sharing._RULE_FIELDS,
        "rule_columns": pickle.dumps(tuple(columns)),
        "rulesets": [({"version": "v1"}, indexes.tobytes())],
    }
    with pytest.raises(sharing.Unavailable, match="bad rule columns"):
        sharing.decode(pickle.dumps(payload))


def test_a_process_on_the_publishers_host_reads_the_file_not_redis(redis_client, share_dir):
    version = _publish_two_profiles()
    path = _file_of(redis_client, version, share_dir)
    assert path.is_file()
    assert path.stat().st_mode & 0o777 == 0o600
    assert share_dir.stat().st_mode & 0o777 == 0o700
    manifest = json.loads(redis_client.get(sharing.manifest_key(version.number)))
    assert path.read_bytes() == b"".join(
        redis_client.get(sharing.chunk_key(manifest["blob"], i)) for i in range(manifest["chunks"])
    )
    redis_client.delete(*[sharing.chunk_key(manifest["blob"], i) for i in range(manifest["chunks"])])
    state = _fresh_load()  # the Redis chunks are gone: only the file can have served it
    assert (state.source, state.version) == ("shared", version.number)
    assert runtime.load_counts == {"shared": 1}
    assert check("the narwhal", "prompt", runtime.active_ruleset()).action == "refuse"


@pytest.mark.parametrize("damage", ["tampered", "short", "missing"])
def test_a_bad_or_missing_file_is_never_unpickled_and_redis_serves(redis_client, share_dir, damage, caplog):
    version = _publish_two_profiles()
    path = _file_of(redis_client, version, share_dir)
    data = bytearray(path.read_bytes())
    if damage == "tampered":
        data[100] ^= 0xFF
        path.write_bytes(data)
    elif damage == "short":
        path.write_bytes(data[:-1])
    else:
        path.unlink()
    state = _fresh_load()
    assert (state.source, state.version) == ("shared", version.number)
    assert runtime.load_counts == {"shared": 1}
    bad_mac = [r for r in caplog.records if getattr(r, "event", "") == "policies.share_file_bad"]
    assert len(bad_mac) == (damage == "tampered")


def test_only_the_newest_file_is_kept_and_a_directory_that_cannot_be_written_costs_only_the_file(
    redis_client, share_dir, settings, tmp_path
):
    first = _publish_two_profiles()
    first_file = _file_of(redis_client, first, share_dir)
    second = _publish_one_more("one more")
    assert not first_file.exists()
    assert [p.name for p in share_dir.iterdir()] == [_file_of(redis_client, second, share_dir).name]
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    settings.POLICY_SHARE_DIR = str(blocker / "share")  # mkdir fails: the publish still shares through Redis
    third = _publish_one_more("and another")
    assert (third.shared, third.announced) == (True, True)
    assert _fresh_load().source == "shared"


def test_the_file_is_not_written_into_a_directory_others_can_open(redis_client, share_dir, caplog):
    share_dir.mkdir(mode=0o755)  # as if someone else had made it first, readable by all
    share_dir.chmod(0o755)
    version = _publish_two_profiles()
    assert not _file_of(redis_client, version, share_dir).exists()
    assert any(getattr(r, "event", "") == "policies.share_file_failed" for r in caplog.records)
    assert (version.shared, _fresh_load().source) == (True, "shared")  # through Redis
