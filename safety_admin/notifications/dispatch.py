"""Hands new outbox rows to Redis from a background thread, so the request path never waits on Redis.

The hooks run inside the request's transaction; after commit they only put ids on an in-process queue
(microseconds). One daemon thread per process drains it into RQ in batches (one pipeline per batch).
If Redis is down, or the process dies before the thread gets to a batch, nothing is lost: the rows are
committed and ``notification_sweep`` enqueues them. Retries and follow-ups enqueue synchronously (they
run in workers and admin actions, where a Redis round trip costs nobody anything).
"""

import atexit
import logging
import os
import queue
import threading
import time

from redis.exceptions import RedisError

log = logging.getLogger(__name__)

_lock = threading.Lock()
_queue: "queue.Queue[list[tuple[int, int]]]" = queue.Queue()
_owner_pid = 0  # the process whose thread serves _queue; a forked child starts its own


def _run() -> None:
    from safety_admin.notifications.services import notification_enqueue

    while True:
        batches = [_queue.get()]
        while len(batches) < 100:
            try:
                batches.append(_queue.get_nowait())
            except queue.Empty:
                break
        rows = [row for batch in batches for row in batch]
        try:
            notification_enqueue(rows)
        except RedisError:
            log.warning("notification enqueue failed; the sweep will retry",
                        extra={"event": "notification.enqueue_failed", "count": len(rows)})  # fmt: skip
        except Exception:  # the thread must survive anything; the sweep covers what it missed
            log.exception("notification enqueue crashed", extra={"event": "notification.enqueue_failed"})
        finally:
            for _ in batches:
                _queue.task_done()


def _ensure_thread() -> None:
    global _queue, _owner_pid
    pid = os.getpid()
    if _owner_pid == pid:
        return
    with _lock:
        if _owner_pid != pid:
            if _owner_pid:  # forked: the parent's queue and thread do not exist here
                _queue = queue.Queue()
            threading.Thread(target=_run, name="notification-dispatch", daemon=True).start()
            _owner_pid = pid


def submit(rows: list[tuple[int, int]]) -> None:
    """Queue ``(notification id, attempt)`` pairs for enqueueing; returns at once."""
    if rows:
        _ensure_thread()
        _queue.put(list(rows))


def flush(timeout: float = 5.0) -> bool:
    """Wait until everything submitted so far has been handed to Redis (or failed); False on timeout."""
    deadline = time.monotonic() + timeout
    while _queue.unfinished_tasks:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


# A short grace at exit: a command that just created an escalation gets its jobs out (else the sweep will).
atexit.register(flush, 1.0)
