"""The hash chain's canonical encoding: pure functions, no Django, shared by the writer, the verifier and export.

docs/verify_export.py repeats these few lines so a third party needs nothing from this project.

An event's hash is SHA-256 over its chained fields, each written as ``<length in code points>:<value>\\n``
in the order of ``CHAINED_FIELDS`` (a netstring-like encoding: unambiguous, and fast enough to re-check a
million events in seconds). ``data`` is chained as its stored canonical JSON text. A checkpoint signs
``CHECKPOINT_PREFIX``, its sequence number, the head hash and its time, one per line.
"""

import hashlib
import json
from datetime import UTC, datetime

VERSION = "safety-audit-v1"
CHECKPOINT_PREFIX = "safety-audit-checkpoint-v1"
GENESIS_HASH = "0" * 64
CHAINED_FIELDS = (
    "seq", "prev_hash", "ticket_id", "created_at", "actor_id", "actor_label", "action", "subject_type",
    "subject_id", "subject_repr", "request_id", "trace_id", "principal_pseudonym", "data",
)  # fmt: skip


def canonical_json(value) -> str:
    """Sorted keys, no spaces, ASCII only: the same bytes on every platform and database."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def canonical_time(moment: datetime) -> str:
    """UTC, always with microseconds: ``2026-11-25T12:00:00.000000+00:00`` (naive values are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def event_hash(values) -> str:
    """SHA-256 (hex) of the chained values, given in ``CHAINED_FIELDS`` order as str/int/None.

    ``None`` is written as the empty string (only ``actor_id`` can be None), ints in decimal.
    """
    parts = [VERSION]
    for value in values:
        text = "" if value is None else str(value)
        parts.append(f"{len(text)}:{text}")
    return hashlib.sha256(("\n".join(parts) + "\n").encode()).hexdigest()


def checkpoint_message(seq: int, head_hash: str, created_at: str) -> bytes:
    """The exact bytes a checkpoint signs."""
    return f"{CHECKPOINT_PREFIX}\n{seq}\n{head_hash}\n{created_at}\n".encode()
