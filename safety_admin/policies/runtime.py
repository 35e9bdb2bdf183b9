"""The ruleset each process uses right now, and how a published version reaches every process.

Callers only ever ask ``active_ruleset(profile, metadata=...)`` and ``steering_prompt(profile)``. Both read one
module-level reference to an immutable ``PolicyState`` and do dict lookups: no database or Redis call per request.

Distribution, in two phases: publishing compiles the version and stores the compiled form in Redis
(``sharing``: chunked, HMAC-authenticated, tied to the code that built it), then — before its transaction
commits — announces it on ``STAGE_CHANNEL`` and waits (at most ``POLICY_STAGE_WAIT_SECONDS``) until every live
process reports it loaded beside the old state ("staged"). After the commit it stores the active version
number (``ACTIVE_KEY``) and announces it on ``CHANNEL``; each process checks the database's active row and
installs its staged state (one reference swap), or, when it staged nothing usable, loads the compiled form —
or reads the version from the database and compiles it — then swaps. If Redis is unreachable the process keeps
its last good state and re-reads the database's active version once Redis answers again. A fresh process
loads the active version the same way (shared compiled form, else the database); with no published version it
uses the shipped default packs.
"""

import ctypes
import dataclasses
import gc
import json
import logging
import os
import socket
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis
from django.conf import settings
from django.db import connection
from django.utils.text import slugify
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

import safety_admin.detectors as detectors
from safety_admin.detectors import Rule, Ruleset, compile_ruleset, default_rules
from safety_admin.policies import sharing
from safety_admin.policies.profiles import DEFAULT_PROFILE, effective_config, selection_key

log = logging.getLogger(__name__)

ACTIVE_KEY = "policies:active_version"
CHANNEL = "policies:published"
STAGE_CHANNEL = "policies:staging"
PROC_PREFIX = "policies:proc:"
PROC_SET = "policies:procs"  # the report keys of processes that reported (expired ones are pruned on read)
BUILTIN_LABEL = "builtin"
SNAPSHOT_FORMAT = 1
# Entry rows in a snapshot are compact arrays in this order.
ENTRY_FIELDS = ("rule_id", "pattern", "match_type", "reason_code", "severity", "action", "direction", "window", "note")


def load_packs() -> dict[str, list[Rule]]:
    """The shipped packs (the detectors' ``load_packs``; a single "builtin" pack until it exists)."""
    loader = getattr(detectors, "load_packs", None)
    if loader is None:
        return {"builtin": default_rules()}
    return dict(loader())


def builtin_list_name(pack: str) -> str:
    return f"builtin-{slugify(pack)}"[:100]


def default_snapshot() -> dict:
    """What a deployment with no published version runs: every shipped pack, no profiles."""
    lists = [{"name": builtin_list_name(p), "builtin": True, "pack": p, "enabled": True} for p in sorted(load_packs())]
    return {"format": SNAPSHOT_FORMAT, "lists": lists, "profiles": {}}


def _gc_reset_after_fork() -> None:
    global _gc_lock, _gc_depth
    if _gc_depth and _gc_was_enabled:
        gc.enable()  # forked while a build paused the collector: the child must not inherit that
    _gc_lock, _gc_depth = threading.Lock(), 0


def _find_malloc_trim():
    try:  # the C library this interpreter is linked against (no ``find_library``: it runs ldconfig at start-up)
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): there is nothing of this kind to hand back
        return None


_malloc_trim = _find_malloc_trim()


def release_freed_memory() -> None:
    """Hand the pages a replaced ruleset or a compile's scratch left free back to the operating system.

    The automatons are C allocations: freed, glibc keeps their pages in its heap, so a process's RSS grew by
    20-45 MB per 100k entries after each switch (measured in ``make bench ARGS=policies``) until something
    reused them. ``malloc_trim`` returns whole free pages (1-3 ms at 100k entries; ctypes drops the GIL)."""
    if _malloc_trim is not None:
        _malloc_trim(0)


_gc_lock = threading.Lock()
_gc_depth = 0
_gc_was_enabled = True


@contextmanager
def gc_paused():
    """Pause Python's cyclic garbage collector while a large ruleset is built, parsed or stored.

    Building 100k rules allocates a few hundred thousand long-lived containers; each allocation burst triggers
    collections that walk every live object again, which made compiling ~40 % slower. Nothing built here forms
    reference cycles (refcounting frees it); anything cyclic made meanwhile is collected once the pause ends.
    Re-entrant and thread-safe: the collector is re-enabled when the last concurrent pause ends, and only if
    it was on before the first.
    """
    global _gc_depth, _gc_was_enabled
    with _gc_lock:
        if _gc_depth == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_depth += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_depth -= 1
            if _gc_depth == 0 and _gc_was_enabled:
                gc.enable()


def snapshot_rules(
    snapshot: dict, packs: dict[str, list[Rule]] | None = None, *, consume: bool = False
) -> dict[str, list[Rule]]:
    """Rules of every *enabled* list in a snapshot, by list name.

    ``consume`` removes each list's entry rows from ``snapshot`` once they are rules, so a process loading a
    version frees the decoded rows before compiling and the compile reuses that memory (15 to 45 MB less
    resident memory per 100k entries than holding both, depending on how much the compile allocates).
    """
    packs = load_packs() if packs is None else packs
    out: dict[str, list[Rule]] = {}
    for item in snapshot.get("lists", []):
        if not item.get("enabled", True):
            continue
        if item.get("builtin"):
            out[item["name"]] = list(packs.get(item.get("pack", ""), ()))
        else:
            rows = item.pop("entries", []) if consume else item.get("entries", [])
            out[item["name"]] = _rules_from_rows(rows)
            del rows
    return out


# A snapshot's entry row: these fields in this order (selectors.draft_snapshot); the others take their defaults.
_ROW_FIELDS = ("rule_id", "pattern", "match_type", "reason_code", "severity", "action", "direction", "window", "note")
_ROW_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Rule) if f.name not in _ROW_FIELDS}
_ROWS_FAST = sharing.RULE_FAST and dataclasses.MISSING not in _ROW_DEFAULTS.values()  # no default_factory


def _rules_from_rows(rows: list) -> list[Rule]:
    """Rules from entry rows. Filled field by field where ``sharing`` found that safe: 100k rules in 0.25 s
    instead of 0.4 s through the frozen dataclass's ``__init__`` (the compile of every publish makes them)."""
    if not _ROWS_FAST:
        return [Rule(**dict(zip(_ROW_FIELDS, row, strict=True))) for row in rows]
    new, names, defaults = object.__new__, _ROW_FIELDS, _ROW_DEFAULTS
    rules = []
    for row in rows:
        rule = new(Rule)
        fields = rule.__dict__
        fields.update(zip(names, row, strict=True))
        fields.update(defaults)
        rules.append(rule)
    return rules


@dataclass
class PolicyState:
    """One compiled policy version: ``routes[(profile, jurisdiction, context)] -> (Ruleset, steering prompt)``."""

    version: int | None
    label: str
    routes: dict[tuple[str, str, str], tuple[Ruleset, str]]
    profiles: dict[str, dict]
    rule_count: int
    compiled_count: int
    _extra: dict = field(default_factory=dict)
    # how this process got it: "compiled" here, or "shared" (the publisher's compiled form); load time, CPU
    source: str = "compiled"
    load_seconds: float = 0.0
    load_cpu_seconds: float = 0.0
    # the version row it was built from (``sharing.identity_of``) when known: a staged state is installed only
    # when it matches the database's active row
    identity: str = ""

    def lookup(self, profile: str, jurisdiction: str = "", context: str = "") -> tuple[Ruleset, str]:
        hit = self.routes.get((profile, jurisdiction, context))
        if hit is not None:
            return hit
        return self._resolve(profile, jurisdiction, context)

    def _resolve(self, raw_profile: str, jurisdiction: str, context: str) -> tuple[Ruleset, str]:
        """The slow path: a pinned ``name/jurisdiction/context`` profile, unknown names, unnormalized keys."""
        hit = self._extra.get((raw_profile, jurisdiction, context))
        if hit is not None:
            return hit
        name, _, rest = (raw_profile or "").partition("/")
        pinned_j, _, pinned_c = rest.partition("/")
        name = name.strip() if name.strip() in self.profiles else DEFAULT_PROFILE
        config = self.profiles[name]
        # What the client's settings pin wins over request metadata.
        j = (pinned_j or str(jurisdiction or "")).strip().casefold()
        c = (pinned_c or str(context or "")).strip().casefold()
        j = j if j in config.get("jurisdictions", {}) else ""
        c = c if c in config.get("contexts", {}) else ""
        hit = self.routes[(name, j, c)]
        if len(self._extra) < 10_000:  # bounded: metadata values are caller-controlled
            self._extra[(raw_profile, jurisdiction, context)] = hit
        return hit


def build_state(snapshot: dict, *, version: int | None, label: str, packs=None, consume: bool = False) -> PolicyState:
    """Compile every distinct profile/overlay combination of a snapshot once (shared when they select alike).

    ``consume``: the caller no longer needs the snapshot's entry rows; they are dropped before compiling.
    """
    with gc_paused():
        return _build_state(snapshot, version=version, label=label, packs=packs, consume=consume)


def _build_state(snapshot: dict, *, version: int | None, label: str, packs, consume: bool) -> PolicyState:
    rules_by_list = snapshot_rules(snapshot, packs, consume=consume)
    list_names = sorted(rules_by_list)
    profiles = {name: cfg for name, cfg in snapshot.get("profiles", {}).items()}
    profiles.setdefault(DEFAULT_PROFILE, {})
    compiled: dict[str, Ruleset] = {}
    routes: dict[tuple[str, str, str], tuple[Ruleset, str]] = {}
    from safety_admin.policies.profiles import apply_profile

    for name, config in profiles.items():
        for j in ["", *config.get("jurisdictions", {})]:
            for c in ["", *config.get("contexts", {})]:
                eff = effective_config(config, j, c)
                key = selection_key(eff, list_names)
                if key not in compiled:
                    compiled[key] = compile_ruleset(apply_profile(rules_by_list, key), version=label)
                routes[(name, j, c)] = (compiled[key], _prompt(eff))
    for j, c in [k[1:] for k in list(routes) if k[0] == DEFAULT_PROFILE]:
        routes[("", j, c)] = routes[(DEFAULT_PROFILE, j, c)]
    return PolicyState(
        version=version,
        label=label,
        routes=routes,
        profiles=profiles,
        rule_count=sum(len(v) for v in rules_by_list.values()),
        compiled_count=len(compiled),
    )


def _prompt(effective: dict) -> str:
    return effective.get("steering_prompt") or settings.SAFETY_STEERING_PROMPT


# What this process loaded, by source ("shared", "compiled"), and shared forms refused, by reason.
load_counts: dict[str, int] = {}


def _count(name: str) -> None:
    load_counts[name] = load_counts.get(name, 0) + 1


def load_state_from_db() -> PolicyState:
    """The active version — its compiled form shared by the publisher when that is usable, else its snapshot
    from the database, compiled here — or the shipped packs when nothing was ever published."""
    from safety_admin.policies.models import PolicyVersion

    wall, cpu = time.perf_counter(), time.thread_time()
    with gc_paused():  # decoding a 100k-entry snapshot is as allocation-heavy as compiling it
        row = _db_active_row()
        if row is None:
            state = build_state(default_snapshot(), version=None, label=BUILTIN_LABEL)
        else:
            pk, number, created_at = row
            identity = sharing.identity_of(pk, number, created_at)
            state = load_shared(number, identity)
            if state is None:
                snapshot = PolicyVersion.objects.filter(pk=pk).values_list("snapshot", flat=True).first()
                state = build_state(snapshot, version=number, label=f"v{number}", consume=True)
                state.identity = identity
                del snapshot
    state.load_seconds, state.load_cpu_seconds = time.perf_counter() - wall, time.thread_time() - cpu
    _count(state.source)
    if state.source == "compiled":
        log.info("policy compiled here", extra={"event": "policies.compiled", "version": state.label})
    return state


def load_shared(number: int, identity: str, *, url: str | None = None) -> PolicyState | None:
    """Version ``number`` from the compiled form the publisher stored in Redis; None (logged) when it is not
    there or not usable: the caller compiles from the database instead."""
    if not settings.POLICY_SHARE_COMPILED:
        return None
    # 1 MB socket reads: the 4 MB pieces of a 73 MB blob in a fifth less CPU than redis-py's 64 KB default.
    client = _client(url or settings.REDIS_URL, 1.0, read_timeout=30.0, read_size=1 << 20)
    try:
        blob = sharing.fetch(client, number=number, identity=identity, directory=_share_dir())
        parts = sharing.decode(blob)
        del blob
    except sharing.Unavailable as exc:
        _count(f"refused: {exc}")
        level = logging.WARNING if str(exc) == "bad MAC" else logging.INFO
        extra = {"event": "policies.shared_refused", "version": number, "reason": str(exc)}
        log.log(level, "shared compiled policy not used; compiling here", extra=extra)
        return None
    except (RedisError, OSError) as exc:
        _count("refused: Redis")
        extra = {"event": "policies.shared_refused", "version": number, "reason": type(exc).__name__}
        log.info("shared compiled policy not reachable; compiling here", extra=extra)
        return None
    except Exception:  # a blob with a good MAC that does not load is a bug, not a reason to stop
        _count("refused: error")
        extra = {"event": "policies.shared_failed", "version": number}
        log.exception("shared compiled policy failed to load; compiling here", extra=extra)
        return None
    finally:
        client.close()
    state = state_from_parts(parts, version=number, label=f"v{number}")
    state.identity = identity
    return state


def state_from_parts(parts: dict, *, version: int, label: str) -> PolicyState:
    """A ``PolicyState`` from ``sharing.decode``'s parts; steering prompts come from this process's settings."""
    rulesets, profiles = parts["rulesets"], parts["profiles"]
    routes = {}
    for (name, j, c), index in parts["routes"].items():
        config = profiles.get(name or DEFAULT_PROFILE, {})
        routes[(name, j, c)] = (rulesets[index], _prompt(effective_config(config, j, c)))
    return PolicyState(
        version=version,
        label=label,
        routes=routes,
        profiles=profiles,
        rule_count=parts["rule_count"],
        compiled_count=parts["compiled_count"],
        source="shared",
    )


def _share_dir() -> Path | None:
    """Where this host's processes find the compiled state without reading it through Redis (None: Redis only)."""
    return Path(settings.POLICY_SHARE_DIR) if settings.POLICY_SHARE_DIR else None


def share(state: PolicyState, *, pk: int, created_at, url: str | None = None) -> bool:
    """Store the compiled ``state`` in Redis for the other processes (before announcing it); False (logged)
    when it could not be stored: they then compile the version themselves."""
    if not settings.POLICY_SHARE_COMPILED or state.version is None:
        return False
    client = _client(url or settings.REDIS_URL, 1.0, read_timeout=30.0)
    try:
        with gc_paused():
            blob = sharing.encode(state)
        identity = sharing.identity_of(pk, state.version, created_at)
        sharing.store(
            client, number=state.version, identity=identity, label=state.label, blob=blob, directory=_share_dir()
        )
        return True
    except sharing.Unavailable as exc:
        log.info("policy not shared", extra={"event": "policies.share_failed", "reason": str(exc)})
    except (RedisError, OSError) as exc:
        extra = {"event": "policies.share_failed", "reason": type(exc).__name__}
        log.warning("storing the compiled policy failed; processes will compile it", extra=extra)
    except Exception:
        extra = {"event": "policies.share_failed"}
        log.exception("serialising the compiled policy failed; processes will compile it", extra=extra)
    finally:
        client.close()
    return False


# --- staging: every live process loads the next version before it becomes active ---------------------------------
_staged: PolicyState | None = None
_staged_at = 0.0
# A staged version that is never activated (its publish rolled back, or the publisher died) is dropped after this.
STAGED_KEEP_SECONDS = 120.0


def _set_staged(state: PolicyState) -> None:
    global _staged, _staged_at
    _staged, _staged_at = state, time.monotonic()


def take_staged(identity: str) -> PolicyState | None:
    """The staged state when it is the version row ``identity`` (it is then no longer staged), else None."""
    global _staged
    state = _staged
    if state is None or not identity or state.identity != identity:
        return None
    _staged = None
    return state


def _drop_stale_staged() -> None:
    global _staged
    if _staged is not None and time.monotonic() - _staged_at > STAGED_KEEP_SECONDS:
        _staged = None
        release_freed_memory()


def report_process(client: redis.Redis, key: str, report: dict, *, ttl: int) -> None:
    """Store a process's report under ``key`` and list the key in ``PROC_SET`` (one round trip)."""
    pipe = client.pipeline(transaction=False)
    pipe.set(key, json.dumps(report), ex=ttl)
    pipe.sadd(PROC_SET, key)
    pipe.execute()


def _reports(client: redis.Redis, keys=None) -> dict[str, dict]:
    """Report key -> report, for ``keys`` or every listed process. Reads only the listed keys (never a SCAN of
    the keyspace, which holds every RQ job too); keys whose report expired are taken off the list."""
    keys = sorted(keys if keys is not None else (k.decode() for k in client.smembers(PROC_SET)))
    values = client.mget(keys) if keys else []
    gone = [key for key, value in zip(keys, values, strict=True) if value is None]
    if gone:
        client.srem(PROC_SET, *gone)
    return {key: json.loads(value) for key, value in zip(keys, values, strict=True) if value}


def _is_live(report: dict, now: float) -> bool:
    """A listener reports at least every poll interval; one silent for twice that (plus slack) is gone or stuck."""
    poll = float(report.get("poll_s") or settings.POLICY_POLL_SECONDS)
    return now - float(report.get("at") or 0) <= 2 * poll + 1.0


# What staging survives (and logs): Redis failing, or a process report that is not one.
_STAGE_ERRORS = (RedisError, OSError, ValueError, KeyError, TypeError)


class Staging(threading.Thread):
    """Phase one of a publish or rollback, run before its transaction commits: store the compiled state in Redis
    (``share``) and announce it on ``STAGE_CHANNEL``, in a background thread, so that the processes load it while
    the publishing thread writes the version row (a 100k-entry snapshot is most of a second of PostgreSQL work);
    then ``wait`` — at most ``POLICY_STAGE_WAIT_SECONDS`` from the announcement — until every live process has
    loaded it beside its current state and said so. Activating it after the commit is then one reference swap per
    process. Never raises for Redis: a process that staged nothing loads the version when it is activated, as
    without staging. The thread touches Redis only, never the database."""

    def __init__(self, state: PolicyState, *, pk: int, created_at, url: str | None = None):
        super().__init__(name="policy-stage", daemon=True)
        self.state, self.pk, self.created_at, self.url = state, pk, created_at, url
        self.result = {"shared": False, "processes": 0, "staged": 0, "reported": 0, "wait_s": 0.0}
        self.live: set[str] = set()
        self.announced_at: float | None = None
        state.identity = sharing.identity_of(pk, state.version, created_at)

    def run(self) -> None:
        state = self.state
        try:
            self.result["shared"] = share(state, pk=self.pk, created_at=self.created_at, url=self.url)
            if not self.result["shared"]:
                return  # nothing to stage from: processes read the committed version from the database
            _set_staged(state)  # this process's own listener has nothing to load
            client = _client(self.url or settings.REDIS_URL, 1.0)
            try:
                self.live = {key for key, r in _reports(client).items() if _is_live(r, time.time())}
                self.result["processes"] = len(self.live)
                client.publish(STAGE_CHANNEL, json.dumps({"version": state.version, "identity": state.identity}))
                self.announced_at = time.monotonic()
            finally:
                client.close()
        except _STAGE_ERRORS as exc:
            self._failed(exc)
        except Exception:  # share() logs its own failures; anything else must not kill a publish either
            log.exception("staging the policy failed", extra={"event": "policies.stage_failed"})

    def _failed(self, exc: Exception) -> None:
        extra = {"event": "policies.stage_failed", "version": self.state.version, "reason": type(exc).__name__}
        log.warning("staging the policy failed; processes will load it on activation", extra=extra)

    def wait(self) -> dict:
        """Wait for the announcement, then for every live process's answer (bounded). Returns
        ``{"shared", "processes", "staged", "reported", "wait_s"}``: whether the compiled form was stored, how
        many live processes were waited for, how many staged it, how many answered at all (a process that could
        not use the shared form answers too, and compiles on activation), and how long this call waited."""
        started = time.monotonic()
        self.join()
        result, live, state = self.result, self.live, self.state
        if self.announced_at is not None and live:
            client = _client(self.url or settings.REDIS_URL, 1.0)
            try:
                deadline = self.announced_at + settings.POLICY_STAGE_WAIT_SECONDS
                while True:
                    answers = {k: r for k, r in _reports(client, live).items() if r.get("staged") == state.identity}
                    result["reported"] = len(live & answers.keys())
                    result["staged"] = sum(1 for p in live & answers.keys() if answers[p].get("staged_ok"))
                    if result["reported"] == len(live) or time.monotonic() >= deadline:
                        break
                    time.sleep(0.01)
            except _STAGE_ERRORS as exc:
                self._failed(exc)
            finally:
                client.close()
        result["wait_s"] = round(time.monotonic() - started, 4)
        if result["reported"] < result["processes"]:
            extra = {"event": "policies.stage_incomplete", "version": state.version, **result}
            log.warning("not every process staged the policy in time; the rest load it on activation", extra=extra)
        self.state = None
        return result


def stage_in_background(state: PolicyState, *, pk: int, created_at, url: str | None = None) -> Staging:
    """Start phase one (``Staging``) for the version row ``pk``/``created_at`` (which may not be written yet)."""
    staging = Staging(state, pk=pk, created_at=created_at, url=url)
    staging.start()
    return staging


# --- the process-wide reference -------------------------------------------------------------------------------
_state: PolicyState | None = None
_boot_lock = threading.Lock()
_listener: "PolicyListener | None" = None


def install(state: PolicyState) -> PolicyState | None:
    """Swap the process's policy atomically (one reference assignment); in-flight requests keep the old one.

    Returns the replaced state: a caller that holds it until its announcement or report is out keeps freeing
    100k rules (~0.1 s) off that path."""
    global _state, _staged
    previous, _state = _state, state
    if _staged is state:
        _staged = None
    log.info("policy installed", extra={"event": "policies.installed", "version": state.label})
    return previous


def peek_state() -> PolicyState | None:
    """The state this process runs, without loading one (None before first use)."""
    return _state


def current_state() -> PolicyState:
    state = _state
    if state is None:
        state = _boot()
    return state


def _boot() -> PolicyState:
    with _boot_lock:
        if _state is None:
            install(load_state_from_db())
            release_freed_memory()  # the decoded snapshot or the compile's scratch
            _start_listener()
        return _state


def reset() -> None:
    """Forget the loaded state and stop the listener (tests; the next call loads from the database again)."""
    global _state, _listener, _staged
    if _listener is not None:
        _listener.stop()
        _listener = None
    _state = _staged = None


def _start_listener() -> None:
    global _listener
    # The test process drives swaps itself: a background thread holding its own database connection would
    # outlive each test's database. Worker and web processes started by tests do run the listener.
    if "pytest" in sys.modules or not settings.POLICY_LISTENER:
        return
    if _listener is None or not _listener.is_alive():
        _listener = PolicyListener(settings.REDIS_URL)
        _listener.start()


def _after_fork() -> None:
    # Threads do not survive fork (gunicorn --preload): the child starts its own listener on first use.
    global _listener, _boot_lock
    _listener = None
    _boot_lock = threading.Lock()
    _gc_reset_after_fork()
    if _state is not None:
        _start_listener()


os.register_at_fork(after_in_child=_after_fork)


def _overlays(metadata: dict) -> tuple[str, str]:
    """Jurisdiction and context from request metadata; anything but a short string counts as absent."""
    j, c = metadata.get("jurisdiction"), metadata.get("context")
    return (j if isinstance(j, str) and len(j) <= 100 else "", c if isinstance(c, str) and len(c) <= 100 else "")


def active_ruleset(profile: str = "", *, metadata: dict | None = None) -> Ruleset:
    """The compiled ruleset for ``profile`` (the default profile when empty), with jurisdiction/context overlays
    chosen by ``metadata["jurisdiction"]`` / ``metadata["context"]`` unless the profile pins them."""
    state = _state or _boot()
    if metadata:
        return state.lookup(profile, *_overlays(metadata))[0]
    return state.lookup(profile)[0]


def steering_prompt(profile: str = "", *, metadata: dict | None = None) -> str:
    """The system prompt the worker prepends to every model call (a profile may set its own)."""
    state = _state or _boot()
    if metadata:
        return state.lookup(profile, *_overlays(metadata))[1]
    return state.lookup(profile)[1]


# --- Redis: announcing and listening ----------------------------------------------------------------------------
def _client(url: str, timeout: float, *, read_timeout: float | None = None, read_size: int = 65536) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        socket_timeout=read_timeout or timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
        socket_read_size=read_size,
    )


def announce(number: int, *, url: str | None = None) -> bool:
    """Store the active version number in Redis and tell every process; False when Redis is unreachable."""
    client = _client(url or settings.REDIS_URL, 1.0)
    try:
        pipe = client.pipeline(transaction=False)
        pipe.set(ACTIVE_KEY, number)
        pipe.publish(CHANNEL, json.dumps({"version": number, "at": time.time()}))
        pipe.execute()
        return True
    except (RedisError, OSError):
        log.warning("policy announcement failed", extra={"event": "policies.announce_failed", "version": number})
        return False
    finally:
        client.close()


def process_acks(*, url: str | None = None) -> list[dict]:
    """Every live process's report of the version it runs (``{"process", "version", "at", ...}``)."""
    client = _client(url or settings.REDIS_URL, 1.0)
    try:
        return list(_reports(client).values())
    finally:
        client.close()


def _db_active_number(*, close: bool = True) -> int | None:
    try:
        row = _db_active_row()
        return row[1] if row else None
    finally:
        if close:  # the listener thread must not hold a database connection between checks
            connection.close()


def _db_active_row() -> tuple | None:
    """``(pk, number, created_at)`` of the active version, or None."""
    from safety_admin.policies.models import PolicyVersion

    return PolicyVersion.objects.filter(is_active=True).values_list("pk", "number", "created_at").first()


class PolicyListener(threading.Thread):
    """Follows announcements: loads a staged version beside the current one, swaps in the activated one (the
    staged state when it is the database's active row, else loaded then); keeps the last good state on failure."""

    def __init__(self, url: str, *, poll_seconds: float | None = None):
        super().__init__(name="policy-listener", daemon=True)
        self.url = url
        self.poll_seconds = poll_seconds or settings.POLICY_POLL_SECONDS
        self.ident_key = f"{PROC_PREFIX}{socket.gethostname()}:{os.getpid()}"
        self._stop_event = threading.Event()
        self.errors = 0
        self.connected = threading.Event()
        self.via = "loaded"  # how the running state was installed: "staged" before activation, or "loaded" then
        self.stage_note: dict = {}  # the last staging announcement answered: {"staged": identity, "staged_ok"}

    def stop(self) -> None:
        self._stop_event.set()
        self.join(5)

    def run(self) -> None:
        delay = 0.2
        while not self._stop_event.is_set():
            client = _client(self.url, max(2.0, self.poll_seconds + 1))
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(CHANNEL, STAGE_CHANNEL)
                # After (re)connecting the database is the truth: announcements may have been missed.
                self._sync(client, _db_active_number(), repair=True)
                self.connected.set()
                delay = 0.2
                last_poll = time.monotonic()
                while not self._stop_event.is_set():
                    message = pubsub.get_message(timeout=0.5)
                    if message and message.get("type") == "message":
                        data = json.loads(message["data"])
                        if message["channel"] == STAGE_CHANNEL.encode():
                            self._stage(client, int(data["version"]), str(data["identity"]))
                        else:
                            self._sync(client, data["version"])
                    elif time.monotonic() - last_poll >= self.poll_seconds:
                        raw = client.get(ACTIVE_KEY)
                        target = int(raw) if raw is not None else _db_active_number()
                        self._sync(client, target, repair=raw is None)
                        last_poll = time.monotonic()
            except (RedisError, OSError, ValueError, KeyError) as exc:
                self.errors += 1
                self.connected.clear()
                log.warning(
                    "policy listener lost Redis; keeping the last good policy",
                    extra={"event": "policies.listener_error", "error": type(exc).__name__},
                )
            except Exception:
                # Never let the thread die: a bad version or a database hiccup must not stop future swaps.
                self.errors += 1
                log.exception(
                    "policy listener failed; keeping the last good policy", extra={"event": "policies.listener_failed"}
                )
            finally:
                try:
                    pubsub.close()
                    client.close()
                except (RedisError, OSError):
                    pass
            self._stop_event.wait(delay)
            delay = min(delay * 2, 5.0)

    def _stage(self, client: redis.Redis, number: int, identity: str) -> None:
        """Load version ``number`` from the publisher's compiled form beside the running state (not installed),
        then report it staged; the publisher commits the activation once every live process has."""
        current, staged = _state, _staged
        ok = True
        if not any(s is not None and s.identity == identity for s in (current, staged)):
            wall, cpu = time.perf_counter(), time.thread_time()
            with gc_paused():
                loaded = load_shared(number, identity)
            ok = loaded is not None  # not usable: the version is read from the database on activation
            if ok:
                loaded.load_seconds, loaded.load_cpu_seconds = time.perf_counter() - wall, time.thread_time() - cpu
                _set_staged(loaded)
                _count("staged")
            del loaded
        self.stage_note = {"staged": identity, "staged_ok": ok}
        self._report(client, _state)

    def _sync(self, client: redis.Redis, target: int | None, *, repair: bool = False) -> None:
        _drop_stale_staged()
        state = _state
        replaced = None  # the old state is freed after the report below, not before it
        if state is None or state.version != target:
            # Redis may be stale (a publish while it was down): the database decides what is active.
            try:
                row = _db_active_row()
                if (row[1] if row else None) != getattr(state, "version", object()):
                    staged = take_staged(sharing.identity_of(*row)) if row else None
                    state = staged if staged is not None else load_state_from_db()
                    self.via = "staged" if staged is not None else "loaded"
                    replaced = install(state)
                    del staged
            finally:
                connection.close()
            repair = repair or state.version != target
        # Redis lost the key (restart) or missed a publish while down: put the database's truth back.
        if repair and state.version is not None and client.get(ACTIVE_KEY) != str(state.version).encode():
            client.set(ACTIVE_KEY, state.version)
        self._report(client, state)
        if replaced is not None:
            del replaced
            release_freed_memory()

    def _report(self, client: redis.Redis, state: PolicyState) -> None:
        """What this process runs, under its own key: the dashboard lists it, publishers wait on "staged"."""
        report_process(
            client,
            self.ident_key,
            {
                "process": self.ident_key,
                "version": state.version,
                "label": state.label,
                "at": time.time(),
                "pid": os.getpid(),
                "source": state.source,
                "via": self.via,
                "load_s": round(state.load_seconds, 4),
                "load_cpu_s": round(state.load_cpu_seconds, 4),
                "poll_s": self.poll_seconds,
                **self.stage_note,
            },
            ttl=max(120, int(self.poll_seconds * 6)),  # outlives a long compile
        )
