"""A small per-process cache whose entries expire, for look-ups the request path makes on every call."""

import time
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """``get(key, load, ttl)``: the cached value while younger than ``ttl`` seconds, else ``load()`` again.

    ``ttl <= 0`` turns caching off. The cache is emptied when it exceeds ``max_size`` keys.
    """

    def __init__(self, max_size: int = 10_000):
        self.max_size = max_size
        self._entries: dict[K, tuple[float, V]] = {}

    def get(self, key: K, load: Callable[[], V], ttl: float) -> V:
        now = time.monotonic()
        cached = self._entries.get(key)
        if ttl > 0 and cached is not None and cached[0] > now:
            return cached[1]
        value = load()
        if ttl > 0:
            if len(self._entries) >= self.max_size:
                self._entries.clear()
            self._entries[key] = (now + ttl, value)
        return value

    def forget(self, key: K) -> None:
        self._entries.pop(key, None)
