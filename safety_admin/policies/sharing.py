"""The compiled policy state, shared through Redis: publishing compiles once, every other process only loads.

Publishing compiles the new version in the publishing process (it must, to refuse a broken draft). That
compiled state is serialised (``encode``), authenticated with an HMAC and stored in Redis in chunks
(``store``) *before* the version is announced. A process that hears the announcement (or boots) fetches it,
checks the MAC over the exact bytes before unpickling anything, and loads it (``fetch`` + ``decode``) instead
of reading the snapshot from PostgreSQL and compiling it again. Anything missing or wrong — Redis down, the
blob evicted or expired, a bad MAC, a blob of another database's version, a process running other detector or
policy code — makes ``load`` return None and the caller compiles from the database as before.

Why it is safe to unpickle: the MAC key is derived from Django's ``SECRET_KEY`` (from the environment, never
stored in Redis), and the MAC covers the manifest (format, code fingerprint, the version's identity, label,
size) and every byte of the blob. Someone who can write to Redis but does not know the secret cannot make a
process unpickle bytes of their choosing, nor pass off one version's blob as another's.

Why a process never loads a ruleset built by other code: the key and the MAC'd manifest carry
``CODE_FINGERPRINT``, a hash of the detectors package (code and rule packs), the policy modules that build a
state, Python's version and pyahocorasick's. It is computed when this module is imported, i.e. from the files
the process actually loaded (a deploy that changes files under a running process does not change its
fingerprint).

Same host, no copy through Redis: ``store`` also writes the blob to ``<directory>/<blob>.blob`` (settings
``POLICY_SHARE_DIR``, a private directory under /dev/shm or the temp dir; empty turns it off), and ``fetch``
reads that file when it exists, checks the same MAC over its bytes, and falls back to the Redis chunks when the
file is missing, short or fails the MAC. Processes on other hosts never find the file and read Redis. Reading
73 MB from the file costs half the CPU of reading it from Redis (0.10 s, of which the MAC is 0.05 s, against
0.19-0.25 s), and every process of the host stages at once, on the same cores as the publisher. The file is a
cache: Redis stays the source, the MAC the protection.

Layout in Redis (every key expires after ``TTL_SECONDS``; only the newest ``KEEP`` blobs are kept):
``policies:compiled:<fingerprint>:<number>`` → JSON manifest ``{format, fingerprint, identity, label, size,
chunks, blob, mac}``; ``policies:compiled:blob:<blob>:<i>`` → ``CHUNK_BYTES`` pieces (a 100k-entry version is
~73 MB, a 1M-entry one ~0.7 GB; Redis refuses values over 512 MB).
"""

import contextlib
import dataclasses
import hashlib
import hmac
import io
import json
import logging
import operator
import os
import pickle
import secrets
import stat
import sys
from array import array
from collections.abc import Sequence
from importlib import metadata
from operator import attrgetter
from pathlib import Path

import safety_admin.detectors as detectors
from safety_admin.detectors import Rule, Ruleset

log = logging.getLogger(__name__)

FORMAT = 1
KEY_PREFIX = "policies:compiled:"
INDEX_KEY = "policies:compiled-index"  # newest first: the blobs stored, for pruning
# Redis refuses values over 512 MB. Smaller pieces also read cheaper: redis-py's parser spent 0.23 s of CPU
# reading 72 MB as one 64 MB piece and a rest, 0.14 s in 4 MB pieces (pipelined GETs, then one join).
CHUNK_BYTES = 4 * 1024 * 1024
MAX_CHUNKS = 4096
TTL_SECONDS = 24 * 3600
KEEP = 1  # blobs kept; a rollback stores its version again (a process switching meanwhile compiles)
MAC_SALT = b"safety_admin.policies.sharing: compiled policy state v1"
_POLICY_MODULES = ("runtime.py", "profiles.py", "sharing.py")


class Unavailable(Exception):
    """The shared compiled form cannot be used; the message says why (logged, then the caller compiles)."""


def _code_fingerprint() -> str:
    digest = hashlib.sha256()
    try:
        aho = metadata.version("pyahocorasick")
    except metadata.PackageNotFoundError:
        aho = "?"
    digest.update(f"{FORMAT}|{sys.version}|{aho}|{pickle.HIGHEST_PROTOCOL}".encode())
    root = Path(detectors.__file__).resolve().parent
    here = Path(__file__).resolve().parent
    files = [p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    files += [here / name for name in _POLICY_MODULES]
    for path in sorted(files):
        data = path.read_bytes()
        digest.update(f"\0{path.name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()[:32]


CODE_FINGERPRINT = _code_fingerprint()


def _mac_key() -> bytes:
    from django.conf import settings

    return hmac.new(settings.SECRET_KEY.encode(), MAC_SALT, hashlib.sha256).digest()


def _header(manifest: dict) -> bytes:
    signed = {k: manifest[k] for k in ("format", "fingerprint", "identity", "label", "size", "chunks", "blob")}
    return json.dumps(signed, sort_keys=True, separators=(",", ":")).encode()


def _mac(manifest: dict, pieces) -> str:
    mac = hmac.new(_mac_key(), _header(manifest), hashlib.sha256)
    mac.update(b"\n")
    for piece in pieces:
        mac.update(piece)
    return mac.hexdigest()


def _mac_ok(manifest: dict, pieces) -> bool:
    """Whether ``pieces`` (the blob, whole or in chunks) and the manifest's signed fields match its MAC."""
    return hmac.compare_digest(_mac(manifest, pieces), str(manifest.get("mac", "")))


def manifest_key(number: int, fingerprint: str | None = None) -> str:
    return f"{KEY_PREFIX}{fingerprint or CODE_FINGERPRINT}:{number}"


def chunk_key(blob: str, index: int) -> str:
    return f"{KEY_PREFIX}blob:{blob}:{index}"


# --- state <-> bytes --------------------------------------------------------------------------------------------
_RULE_FIELDS = tuple(f.name for f in dataclasses.fields(Rule))
# Rules come back as plain instances filled field by field (a frozen dataclass's __init__ costs 1.5x that);
# only when Rule is a plain dataclass whose every field is an __init__ argument. (runtime.snapshot_rules too.)
RULE_FAST = (
    "__dict__" in dir(Rule)
    and not hasattr(Rule, "__slots__")
    and not hasattr(Rule, "__post_init__")
    and all(f.init for f in dataclasses.fields(Rule))
)


def encode(state) -> bytes:
    """The compiled state as bytes. Rules go column by column (pickling 100k rule objects one by one cost 0.4 s
    to write and 0.2 s to read); the automatons pickle themselves (pyahocorasick writes its nodes in C)."""
    rulesets: list[Ruleset] = []
    ruleset_index: dict[int, int] = {}
    routes: dict[tuple, int] = {}
    for key, (ruleset, _prompt) in state.routes.items():
        i = ruleset_index.get(id(ruleset))
        if i is None:
            i = ruleset_index[id(ruleset)] = len(rulesets)
            rulesets.append(ruleset)
        routes[key] = i
    rules: list[Rule] = []
    rule_index: dict[int, int] = {}
    parts = []
    for ruleset in rulesets:
        if type(ruleset) is not Ruleset:
            raise Unavailable(f"cannot share a {type(ruleset).__name__}")
        indexes = array("q")
        for rule in ruleset.rules:
            i = rule_index.get(id(rule))
            if i is None:
                if type(rule) is not Rule:
                    raise Unavailable(f"cannot share a {type(rule).__name__}")
                i = rule_index[id(rule)] = len(rules)
                rules.append(rule)
            indexes.append(i)
        # what Ruleset(...) takes; a field derived in __post_init__ is derived again by the loading process
        fields = {f.name: getattr(ruleset, f.name) for f in dataclasses.fields(Ruleset) if f.init and f.name != "rules"}
        parts.append((fields, indexes.tobytes()))
    columns = tuple(tuple(map(attrgetter(name), rules)) for name in _RULE_FIELDS)
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.fast = True  # plain strings and ints, no cycles: no memo of a million objects (0.2 s -> 0.03 s)
    pickler.dump(columns)
    del columns
    payload = {
        "format": FORMAT,
        "rule_fields": _RULE_FIELDS,
        "rule_columns": buffer.getvalue(),
        "rulesets": parts,
        "routes": routes,
        "profiles": state.profiles,
        "rule_count": state.rule_count,
        "compiled_count": state.compiled_count,
    }
    return pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)


class _RuleStore:
    """The rule columns of a loaded state; makes each Rule the first time a check asks for it, once (every
    ruleset of the state shares the store, so shares the objects too)."""

    __slots__ = ("columns", "made")

    def __init__(self, columns: tuple):
        self.columns, self.made = columns, {}

    def rule(self, index: int) -> Rule:
        rule = self.made.get(index)
        if rule is None:
            row = [column[index] for column in self.columns]
            if RULE_FAST:
                rule = object.__new__(Rule)
                rule.__dict__.update(zip(_RULE_FIELDS, row, strict=True))
            else:
                rule = Rule(*row)
            rule = self.made.setdefault(index, rule)  # two threads asking at once get one object
        return rule


class LoadedRules(Sequence):
    """A loaded ruleset's ``rules``: a read-only sequence that makes each Rule on first use.

    A check only touches the rules it hits, so a process that loads 100k rules makes a handful of objects
    instead of 100k: loading (the staging of every publish) spent about 0.2 s of CPU making them, and they
    held ~20 MB per process."""

    __slots__ = ("_indexes", "_store")

    def __init__(self, store: _RuleStore, indexes: array):
        self._store, self._indexes = store, indexes

    def __len__(self) -> int:
        return len(self._indexes)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return tuple(map(self._store.rule, self._indexes[i]))
        return self._store.rule(self._indexes[i])

    def __iter__(self):
        return map(self._store.rule, self._indexes)

    def __eq__(self, other) -> bool:
        return isinstance(other, Sequence) and len(self) == len(other) and all(map(operator.eq, self, other))

    def __hash__(self) -> int:
        return hash(tuple(self))


def decode(blob: bytes | bytearray) -> dict:
    """The parts of a state from ``encode``'s bytes — call only on bytes whose MAC was checked (``fetch``).

    Returns ``{"rulesets": [Ruleset], "routes": {key: index}, "profiles", "rule_count", "compiled_count"}``; each
    ruleset's ``rules`` is a ``LoadedRules``."""
    payload = pickle.loads(blob)
    if payload.get("format") != FORMAT or tuple(payload["rule_fields"]) != _RULE_FIELDS:
        raise Unavailable("different format")
    columns = pickle.loads(payload.pop("rule_columns"))
    count = len(columns[0]) if columns else 0
    if len(columns) != len(_RULE_FIELDS) or any(len(column) != count for column in columns):
        raise Unavailable("bad rule columns")  # rules are made later, during checks: nothing may fail then
    store = _RuleStore(columns)
    rulesets = []
    for fields, raw in payload.pop("rulesets"):
        indexes = array("q")
        indexes.frombytes(raw)
        if indexes and not 0 <= min(indexes) <= max(indexes) < count:
            raise Unavailable("bad rule columns")
        rulesets.append(Ruleset(rules=LoadedRules(store, indexes), **fields))
    payload["rulesets"] = rulesets
    return payload


# --- Redis --------------------------------------------------------------------------------------------------------
def blob_path(directory: Path, blob: str) -> Path:
    return directory / f"{blob}.blob"


def _write_file(directory: Path | None, blob: str, data: bytes) -> None:
    """The same-host copy of ``data``: written under a temporary name, then renamed (a reader sees all of it or
    no file). A failure is logged and only costs the readers the Redis path."""
    if directory is None:
        return
    temporary = directory / f".{blob}.part"
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        # The blob holds every blocklist term: never write it where another user could read or swap files (a
        # directory someone else created first under /dev/shm, say). Readers need no such check: the MAC.
        info = directory.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
            raise PermissionError(f"{directory} is not a directory of this user's alone (mode 0700)")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
        os.replace(temporary, blob_path(directory, blob))
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        log.warning(
            "could not write the same-host copy of the policy (processes here read it from Redis instead); make "
            "POLICY_SHARE_DIR a writable directory with room for it, or set it empty to stop trying",
            extra={"event": "policies.share_file_failed", "error": str(exc)},
        )


def _prune_files(directory: Path | None, keep: str) -> None:
    """Drop the directory's other blobs, as ``_prune`` drops their Redis chunks. A process reading one keeps
    reading it after the unlink; one that comes later finds no file and reads Redis."""
    if directory is None:
        return
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        if entry.name.endswith((".blob", ".part")) and entry.name not in (f"{keep}.blob", f".{keep}.part"):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)


def _read_file(directory: Path | None, manifest: dict) -> bytearray | None:
    """The same-host copy of the manifest's blob when it is there, whole and passes the MAC; else None."""
    if directory is None:
        return None
    try:
        with open(blob_path(directory, str(manifest["blob"])), "rb", buffering=0) as file:
            size = os.fstat(file.fileno()).st_size
            if size != manifest["size"]:  # checked before allocating: the manifest's size is not verified yet
                return None
            data = bytearray(size)
            if file.readinto(data) != size or file.read(1):
                return None
    except (OSError, ValueError, TypeError):
        return None
    if not _mac_ok(manifest, [data]):
        log.warning("same-host policy copy fails its MAC; reading Redis", extra={"event": "policies.share_file_bad"})
        return None
    return data


def store(client, *, number: int, identity: str, label: str, blob: bytes, directory: Path | None = None) -> str:
    """Put ``blob`` in Redis for version ``number`` (``identity`` tells this database's row apart from another's
    with the same number) and drop older blobs; with ``directory``, also in a file there for processes on this
    host. Returns the manifest key. Raises RedisError/OSError (Redis only: the file is best effort)."""
    token = secrets.token_hex(8)
    view = memoryview(blob)
    pieces = [view[offset : offset + CHUNK_BYTES] for offset in range(0, len(blob), CHUNK_BYTES)] or [view[:0]]
    if len(pieces) > MAX_CHUNKS:
        raise Unavailable("too large")
    manifest = {
        "format": FORMAT,
        "fingerprint": CODE_FINGERPRINT,
        "identity": identity,
        "label": label,
        "size": len(blob),
        "chunks": len(pieces),
        "blob": token,
    }
    manifest["mac"] = _mac(manifest, pieces)
    _write_file(directory, token, blob)  # before the manifest: a reader that finds the manifest finds the file
    key = manifest_key(number)
    pipe = client.pipeline(transaction=False)
    for i, piece in enumerate(pieces):
        pipe.set(chunk_key(token, i), piece, ex=TTL_SECONDS)
    pipe.set(key, json.dumps(manifest), ex=TTL_SECONDS)  # after the chunks: a reader finds all or nothing
    pipe.lpush(INDEX_KEY, json.dumps({"key": key, "blob": token, "chunks": len(pieces)}))
    pipe.lrange(INDEX_KEY, KEEP, -1)
    pipe.ltrim(INDEX_KEY, 0, KEEP - 1)
    pipe.expire(INDEX_KEY, TTL_SECONDS)
    old = pipe.execute()[-3]
    _prune(client, [json.loads(raw) for raw in old])
    _prune_files(directory, token)
    return key


def _prune(client, entries: list[dict]) -> None:
    for entry in entries:
        pipe = client.pipeline(transaction=False)
        pipe.delete(*[chunk_key(entry["blob"], i) for i in range(entry["chunks"])])
        pipe.get(entry["key"])
        current = pipe.execute()[1]
        if current is not None and json.loads(current).get("blob") == entry["blob"]:
            client.delete(entry["key"])  # the manifest still points at the chunks just deleted


def fetch(client, *, number: int, identity: str, directory: Path | None = None) -> bytes | bytearray:
    """The verified blob of version ``number``, from ``directory``'s same-host copy when it has a good one, else
    from Redis; raises ``Unavailable`` (or RedisError/OSError)."""
    raw = client.get(manifest_key(number))
    if raw is None:
        raise Unavailable("missing")
    manifest = json.loads(raw)
    if manifest.get("format") != FORMAT or manifest.get("fingerprint") != CODE_FINGERPRINT:
        raise Unavailable("different code")
    if manifest.get("identity") != identity:
        raise Unavailable("another database's version")
    if not isinstance(manifest.get("chunks"), int) or not 0 < manifest["chunks"] <= MAX_CHUNKS:
        raise Unavailable("bad manifest")
    local = _read_file(directory, manifest)
    if local is not None:
        return local
    pipe = client.pipeline(transaction=False)
    for i in range(manifest["chunks"]):
        pipe.get(chunk_key(manifest["blob"], i))
    pieces = pipe.execute()
    if any(piece is None for piece in pieces):
        raise Unavailable("missing")
    if sum(map(len, pieces)) != manifest["size"]:
        raise Unavailable("bad size")
    if not _mac_ok(manifest, pieces):
        raise Unavailable("bad MAC")
    if len(pieces) == 1:
        return pieces[0]
    # One buffer, each piece freed once copied: the pieces and a joined copy would hold the blob twice (1.4 GB
    # at 1M entries) for a moment.
    blob = bytearray(manifest["size"])
    offset = 0
    for i, piece in enumerate(pieces):
        blob[offset : offset + len(piece)] = piece
        offset += len(piece)
        pieces[i] = piece = None
    return blob


def identity_of(pk: int, number: int, created_at) -> str:
    """What tells one database's version row apart from another's with the same number (a reset database,
    a test run) — the blob's MAC covers it."""
    return f"{number}:{pk}:{created_at.timestamp() if created_at else 0:.6f}"
