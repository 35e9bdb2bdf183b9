"""Per-principal token bucket in Redis: one Lua call, using the Redis server's clock."""

import math
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings

from safety_admin.redis_conn import fast_redis

# KEYS[1] bucket; ARGV rate (tokens/s), burst. Returns {allowed, retry_after_ms}.
_TOKEN_BUCKET = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local allowed = 0
local wait_ms = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait_ms = math.ceil((1 - tokens) / rate * 1000)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, wait_ms}
"""


@lru_cache(maxsize=4)
def _script(client):
    """The registered script for a client: registering hashes the source, which every request would repeat."""
    return client.register_script(_TOKEN_BUCKET)


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    retry_after: int


def limit_for_tier(tier: str) -> int:
    return {
        "user": settings.USER_RATE_LIMIT,
        "verified": settings.VERIFIED_RATE_LIMIT,
        "privileged": settings.PRIVILEGED_RATE_LIMIT,
    }.get(tier, settings.USER_RATE_LIMIT)


def rate_limit_take(pseudonym: str, tier: str) -> RateDecision:
    """Take one token for the principal. Redis errors propagate: the caller fails closed."""
    per_minute = max(1, limit_for_tier(tier))
    allowed, wait_ms = _script(fast_redis())(keys=[f"safety:rl:{pseudonym}"], args=[per_minute / 60.0, per_minute])
    return RateDecision(allowed=bool(allowed), retry_after=max(1, math.ceil(int(wait_ms) / 1000)))
