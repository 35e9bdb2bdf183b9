"""Re-check every link and signature of the chain; report the first bad sequence number.

Detects a changed field (hash mismatch), a deleted event (gap in ``seq``), an inserted or reordered event
(the next link no longer matches), a rewritten stretch with recomputed hashes (the signed checkpoint after
it no longer matches) and forged or untrusted checkpoints. Large chains are split into seq ranges checked by
several processes (``jobs``); each range starts from the stored hash just before it, and that stored hash is
itself checked by the range before.
"""

import hashlib
import multiprocessing
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
    (it is only a rendering of the stored value; the hash is still computed here).
    """
    if connection.vendor == "postgresql":
        return _COLUMNS.replace(
            "created_at, actor_id",
            "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US') || '+00:00', actor_id::text",
        )
    return _COLUMNS


def _check_range(lo: int, hi: int, prev: str, checkpoint_hashes: dict[int, str]) -> tuple[int, Problem | None]:
    """Walk events lo..hi in seq order; returns (events seen, first problem or None)."""
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


def verify_chain(*, jobs: int = 1, min_per_job: int = 50_000) -> VerificationResult:
    """Check the whole chain and every checkpoint. ``jobs`` > 1 forks that many processes (outside transactions)."""
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


def verify_and_record(*, jobs: int = 1, actor_label: str = "verify_audit_chain") -> VerificationResult:
    """Chain pending events, verify, then record the outcome in the trail (the admin index shows the latest)."""
    from audits.services import audit_chain_seal, audit_verification_record

    audit_chain_seal()
    result = verify_chain(jobs=jobs)
    with transaction.atomic():
        audit_verification_record(result=result, actor_label=actor_label)
    return result
