"""Redis connections for the request path: short timeouts, no retries, so the gateway fails closed fast."""

from functools import lru_cache

import redis
from django.conf import settings
from redis.backoff import NoBackoff
from redis.retry import Retry


@lru_cache(maxsize=4)
def _fast(url: str, timeout: float) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        retry_on_timeout=False,
        health_check_interval=0,
    )


def fast_redis() -> redis.Redis:
    """The shared request-path client (redis-py's defaults would take seconds to give up)."""
    return _fast(settings.REDIS_URL, settings.SAFETY_REDIS_TIMEOUT)
