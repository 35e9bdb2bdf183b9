"""Re-check every link and signature of the chain; report the first bad sequence number.

Detects a changed field (hash mismatch), a deleted event (gap in ``seq``), an inserted or reordered event
(the next link no longer matches), a rewritten stretch with recomputed hashes (the signed checkpoint after
it no longer matches) and forged or untrusted checkpoints. Large chains are split into seq ranges checked by
several processes (``jobs``, by default one per available core); each range starts from the stored hash just
before it, and that stored hash is itself checked by the range before.

On PostgreSQL the rows stream with ``COPY … TO STDOUT``: one unparsed line per event, hashed as bytes (no
per-field Python objects unless a value holds an escaped character). The database only renders ``created_at``
as text; every length, link and hash is computed here.
"""

import hashlib
import multiprocessing
import os
import re
import time
from dataclasses import asdict, dataclass, field

from django.db import connection, connections, transaction

from audits import signing
from audits.chain import GENESIS_HASH, VERSION, canonical_time, checkpoint_message
from audits.models import AuditCheckpoint

MISSING = "event missing (deleted?)"
BAD_LINK = "prev_hash does not match the previous event (inserted, deleted or reordered event)"
BAD_HASH = "hash does not match the event's fields (changed field)"
BAD_CHECKPOINT_HASH = "chain head differs from the signed checkpoint (events before it were rewritten)"
BAD_SIGNATURE = "checkpoint signature is invalid"
UNTRUSTED_KEY = "checkpoint signed by a key that is not trusted"
MISSING_TAIL = "checkpoint covers events that no longer exist (deleted at the end?)"

_COLUMNS = ("seq, prev_hash, hash, ticket_id, created_at, actor_id, actor_label, action, subject_type, subject_id, "
            "subject_repr, request_id, trace_id, principal_pseudonym, data")  # fmt: skip


@dataclass
class Problem:
    seq: int
    message: str


@dataclass
class VerificationResult:
    ok: bool = True
    events: int = 0
    last_seq: int = 0
    first_bad_seq: int | None = None
    problem: str = ""
    checkpoints: int = 0
    last_checkpoint_seq: int | None = None
    last_checkpoint_at: str = ""
    unsigned: int = 0  # chained events after the last checkpoint
    pending: int = 0  # committed events the sealer has not chained yet
    seconds: float = 0.0
    problems: list[Problem] = field(default_factory=list)

    def as_dict(self) -> dict:
        out = asdict(self)
        out.pop("problems")
        return out


def _select_columns() -> str:
    """The chained columns as the verifier reads them; on PostgreSQL time and actor id arrive as text already.

    Formatting the time in the database moves the costliest per-row conversion to the server process
    (it is only a rendering of the stored value; the hash is still computed here). No column is ever NULL,
    so a COPY line holds a backslash only where a value needs escaping.
    """
    if connection.vendor == "postgresql":
        return _COLUMNS.replace(
            "created_at, actor_id",
            "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US') || '+00:00', "
            "coalesce(actor_id::text, '')",
        )
    return _COLUMNS


def scan_sql(lo: int, hi: int) -> str:
    """The COPY statement the PostgreSQL verifier streams events lo..hi with (also the bench's plain read)."""
    return (
        f"COPY (SELECT {_select_columns()} FROM audits_auditevent WHERE seq BETWEEN {int(lo)} AND {int(hi)}"
        " ORDER BY seq) TO STDOUT"
    )


def default_jobs() -> int:
    """Processes ``verify_audit_chain`` uses unless told otherwise: the cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


# COPY's text format escapes these (and nothing else) with a backslash; NULL ("\N") cannot occur here.
_COPY_ESCAPES = {b"\\\\": b"\\", b"\\b": b"\b", b"\\f": b"\f", b"\\n": b"\n", b"\\r": b"\r",
                 b"\\t": b"\t", b"\\v": b"\v"}  # fmt: skip
_COPY_ESCAPE = re.compile(rb"\\.")
# The netstring encoding of audits/chain.py for the 14 chained fields, as one bytes template.
_BODY = (VERSION + "\n").encode() + b"%d:%s\n" * 14


def _copy_unescape(match: re.Match) -> bytes:
    return _COPY_ESCAPES[match.group()]


def _slow_body(line: bytes) -> tuple[list[bytes], bytes]:
    """Fields and hashed body of a COPY line holding escapes or non-ASCII text (lengths count characters)."""
    fields = [_COPY_ESCAPE.sub(_copy_unescape, f) if b"\\" in f else f for f in line[:-1].split(b"\t")]
    hashed = fields[:2] + fields[3:]
    args = []
    for value in hashed:
        args += (len(value.decode()), value)
    return fields, _BODY % tuple(args)


def _copy_lines(sql: str):
    """Yield the lines of ``COPY … TO STDOUT`` (bytes, one per row, with its newline).

    Straight from libpq (``Connection.pgconn``, psycopg's documented low-level access): reading a row through
    psycopg's ``Copy`` costs about twice the CPU, which is a fifth of the verifier's time. A consumer that stops
    early still drains the rest, so the connection stays usable.
    """
    from psycopg import errors, pq

    connection.ensure_connection()
    pgconn = connection.connection.pgconn
    encoding = connection.connection.info.encoding
    pgconn.send_query(sql.encode())
    results = []
    stopped = False
    result = pgconn.get_result()
    if result is not None and result.status == pq.ExecStatus.COPY_OUT:
        get = pgconn.get_copy_data
        size = 0
        try:
            while True:
                size, line = get(0)  # blocks until a row is there; -1 at the end, -2 on error
                if size < 0:
                    break
                yield bytes(line)
        except GeneratorExit:
            stopped = True
            while size >= 0:
                size, _ = get(0)
        result = pgconn.get_result()
    while result is not None:
        results.append(result)
        result = pgconn.get_result()
    for result in results:
        if not stopped and result.status not in (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.COPY_OUT):
            raise errors.error_from_result(result, encoding=encoding)


def _check_range_copy(lo: int, hi: int, prev: str, checkpoint_hashes: dict[int, str]) -> tuple[int, Problem | None]:
    """``_check_range`` for PostgreSQL: the same checks over COPY lines, as bytes."""
    sha = hashlib.sha256
    body_of = _BODY.__mod__
    signed_at = {seq: digest.encode() for seq, digest in checkpoint_hashes.items()}
    last = prev.encode()
    expected = lo
    seen = 0
    lines = _copy_lines(scan_sql(lo, hi))
    try:
        for line in lines:
            if b"\\" in line or not line.isascii():
                fields, body = _slow_body(line)
                number, prev_hash, stored = fields[0], fields[1], fields[2]
            else:
                (number, prev_hash, stored, ticket, created, actor, label, act, st, sid, sr, rid, tid, ps,
                 data) = line[:-1].split(b"\t")  # fmt: skip
                body = body_of((
                    len(number), number, len(prev_hash), prev_hash, len(ticket), ticket, len(created), created,
                    len(actor), actor, len(label), label, len(act), act, len(st), st, len(sid), sid, len(sr), sr,
                    len(rid), rid, len(tid), tid, len(ps), ps, len(data), data,
                ))  # fmt: skip
            seq = int(number)
            if seq != expected:
                return seen, Problem(expected, MISSING)
            if prev_hash != last:
                return seen, Problem(seq, BAD_LINK)
            if sha(body).hexdigest().encode() != stored:
                return seen, Problem(seq, BAD_HASH)
            signed = signed_at.get(seq)
            if signed is not None and signed != stored:
                return seen, Problem(seq, BAD_CHECKPOINT_HASH)
            last = stored
            expected += 1
            seen += 1
    finally:
        lines.close()
    if expected <= hi:
        return seen, Problem(expected, MISSING)
    return seen, None


def _check_range(lo: int, hi: int, prev: str, checkpoint_hashes: dict[int, str]) -> tuple[int, Problem | None]:
    """Walk events lo..hi in seq order; returns (events seen, first problem or None)."""
    if connection.vendor == "postgresql":
        return _check_range_copy(lo, hi, prev, checkpoint_hashes)
    sha = hashlib.sha256
    expected = lo
    seen = 0
    head = VERSION + "\n"
    with connection.chunked_cursor() as cursor:
        cursor.execute(
            f"SELECT {_select_columns()} FROM audits_auditevent WHERE seq BETWEEN %s AND %s ORDER BY seq", [lo, hi]
        )
        while True:
            rows = cursor.fetchmany(5000)
            if not rows:
                break
            for (
                seq,
                prev_hash,
                stored,
                ticket,
                created,
                actor_id,
                label,
                act,
                st,
                sid,
                sr,
                rid,
                tid,
                ps,
                data,
            ) in rows:
                if seq != expected:
                    return seen, Problem(expected, MISSING)
                if prev_hash != prev:
                    return seen, Problem(seq, BAD_LINK)
                if not isinstance(created, str):
                    created = canonical_time(created)
                actor = "" if actor_id is None else str(actor_id)
                number = str(seq)
                # The netstring encoding of audits/chain.py, unrolled for speed (one f-string, no lists).
                body = (
                    f"{head}{len(number)}:{number}\n{len(prev_hash)}:{prev_hash}\n{len(ticket)}:{ticket}\n"
                    f"{len(created)}:{created}\n{len(actor)}:{actor}\n{len(label)}:{label}\n{len(act)}:{act}\n"
                    f"{len(st)}:{st}\n{len(sid)}:{sid}\n{len(sr)}:{sr}\n{len(rid)}:{rid}\n{len(tid)}:{tid}\n"
                    f"{len(ps)}:{ps}\n{len(data)}:{data}\n"
                )
                if sha(body.encode()).hexdigest() != stored:
                    return seen, Problem(seq, BAD_HASH)
                signed = checkpoint_hashes.get(seq)
                if signed is not None and signed != stored:
                    return seen, Problem(seq, BAD_CHECKPOINT_HASH)
                prev = stored
                expected += 1
                seen += 1
    if expected <= hi:
        return seen, Problem(expected, MISSING)
    return seen, None


def _stored_hash(seq: int) -> str:
    if seq <= 0:
        return GENESIS_HASH
    with connection.cursor() as cursor:
        cursor.execute("SELECT hash FROM audits_auditevent WHERE seq = %s", [seq])
        row = cursor.fetchone()
    # A missing boundary event is reported by the range that should contain it; "" never matches a link.
    return row[0] if row else ""


def _worker(args):
    lo, hi, checkpoint_hashes = args
    try:
        return _check_range(lo, hi, _stored_hash(lo - 1), checkpoint_hashes)
    finally:
        connections.close_all()


def verify_chain(*, jobs: int | None = None, min_per_job: int = 50_000) -> VerificationResult:
    """Check the whole chain and every checkpoint.

    ``jobs`` > 1 forks that many processes (outside transactions), each checking at least ``min_per_job``
    events; None: one per available core (``default_jobs``).
    """
    if jobs is None:
        jobs = default_jobs()
    started = time.monotonic()
    result = VerificationResult()
    problems: list[Problem] = []
    with connection.cursor() as cursor:
        cursor.execute("SELECT MAX(seq) FROM audits_auditevent")
        last_seq = cursor.fetchone()[0] or 0
    result.last_seq = last_seq

    trusted = signing.trusted_public_keys()
    checkpoint_hashes: dict[int, str] = {}
    for cp in AuditCheckpoint.objects.order_by("seq").iterator():
        message = checkpoint_message(cp.seq, cp.head_hash, canonical_time(cp.created_at))
        if cp.public_key.lower() not in trusted:
            problems.append(Problem(cp.seq, UNTRUSTED_KEY))
        elif not signing.signature_valid(cp.public_key, cp.signature, message):
            problems.append(Problem(cp.seq, BAD_SIGNATURE))
        elif cp.seq > last_seq:
            problems.append(Problem(last_seq + 1, MISSING_TAIL))
        else:
            checkpoint_hashes[cp.seq] = cp.head_hash
            result.checkpoints += 1
            result.last_checkpoint_seq = cp.seq
            result.last_checkpoint_at = canonical_time(cp.created_at)

    if last_seq:
        jobs = max(1, min(jobs, last_seq // max(min_per_job, 1) or 1))
        if jobs > 1 and not connection.in_atomic_block:
            bounds = [(1 + i * last_seq // jobs, (i + 1) * last_seq // jobs) for i in range(jobs)]
            tasks = [(lo, hi, {s: h for s, h in checkpoint_hashes.items() if lo <= s <= hi}) for lo, hi in bounds]
            connections.close_all()  # children must open their own connections
            with multiprocessing.get_context("fork").Pool(jobs) as pool:
                outcomes = pool.map(_worker, tasks)
        else:
            outcomes = [_check_range(1, last_seq, GENESIS_HASH, checkpoint_hashes)]
        for seen, problem in outcomes:
            result.events += seen
            if problem:
                problems.append(problem)

    problems.sort(key=lambda p: p.seq)
    result.problems = problems
    if problems:
        result.ok = False
        result.first_bad_seq = problems[0].seq
        result.problem = problems[0].message
    result.unsigned = last_seq - (result.last_checkpoint_seq or 0)
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM audits_auditevent WHERE seq IS NULL")
        result.pending = cursor.fetchone()[0]
    result.seconds = round(time.monotonic() - started, 3)
    return result


def verify_and_record(*, jobs: int | None = None, actor_label: str = "verify_audit_chain") -> VerificationResult:
    """Chain pending events, verify, then record the outcome in the trail (the admin index shows the latest)."""
    from audits.services import audit_chain_seal, audit_verification_record

    audit_chain_seal()
    result = verify_chain(jobs=jobs)
    with transaction.atomic():
        audit_verification_record(result=result, actor_label=actor_label)
    return result
