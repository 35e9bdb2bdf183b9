"""Idempotency-Key: the same key and body within 24 h returns the first answer again."""

import hashlib
import json
from dataclasses import dataclass

from django.conf import settings

from safety_admin.redis_conn import fast_redis

MAX_KEY_LENGTH = 200


@dataclass(frozen=True)
class Stored:
    body_hash: str
    status: int
    payload: dict


def _redis_key(pseudonym: str, key: str) -> str:
    return f"safety:idem:{pseudonym}:{hashlib.sha256(key.encode('utf-8', 'surrogatepass')).hexdigest()}"


def body_hash(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def idempotency_get(pseudonym: str, key: str) -> Stored | None:
    raw = fast_redis().get(_redis_key(pseudonym, key))
    if raw is None:
        return None
    data = json.loads(raw)
    return Stored(body_hash=data["body_hash"], status=data["status"], payload=data["payload"])


def idempotency_put(pseudonym: str, key: str, stored: Stored) -> None:
    """Remember the first answer (SET NX: a concurrent twin keeps the first one)."""
    fast_redis().set(
        _redis_key(pseudonym, key),
        json.dumps({"body_hash": stored.body_hash, "status": stored.status, "payload": stored.payload}),
        nx=True,
        ex=settings.IDEMPOTENCY_TTL_SECONDS,
    )
