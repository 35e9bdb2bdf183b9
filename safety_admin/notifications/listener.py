"""Turns PostgreSQL's ``NOTIFY safety_outbox`` into RQ delivery jobs, in a worker process.

The statement that inserts new outbox rows also sends ``NOTIFY safety_outbox, '<ids>'`` (``Row.announce`` in
``safety_admin/db.py``), which reaches listeners when the transaction commits.
One listener at a time does the enqueueing (a session advisory lock elects it; another worker takes over
within ``LOCK_RETRY_SECONDS`` when its process dies), so a row gets one job, not one per worker. Whatever it
misses — it was down, Redis was down, a NOTIFY was lost with a dropped connection — ``notification_sweep``
enqueues on its next round, and it runs a catch-up sweep itself each time it (re)connects.
"""

import logging
import threading

import psycopg
from django.db import connections
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

# New outbox rows are announced here by the statement that inserts them (safety_admin.db.Row.announce).
OUTBOX_CHANNEL = "safety_outbox"
LOCK_KEY = 0x5AFE_0B0C
LOCK_RETRY_SECONDS = 5.0
RECONNECT_SECONDS = 2.0


def _conninfo() -> dict:
    params = connections["default"].get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    return {**params, "autocommit": True}


def ids_from_payload(payload: str) -> list[int]:
    return [int(part) for part in payload.split(",") if part.strip().isdigit()]


class OutboxListener(threading.Thread):
    """Daemon thread: LISTEN, and enqueue a first-attempt job for every notified row."""

    def __init__(self):
        super().__init__(name="outbox-listener", daemon=True)
        self._halt = threading.Event()
        self.listening = threading.Event()

    def stop(self) -> None:
        self._halt.set()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                with psycopg.connect(**_conninfo()) as conn:
                    self._serve(conn)
            except psycopg.Error as exc:
                log.warning("outbox listener lost its connection; reconnecting",
                            extra={"event": "notification.listener_down", "error": type(exc).__name__})  # fmt: skip
            except Exception:  # the thread must survive anything; the sweep covers what it missed
                log.exception("outbox listener crashed; restarting", extra={"event": "notification.listener_down"})
            self.listening.clear()
            self._halt.wait(RECONNECT_SECONDS)

    def _serve(self, conn: psycopg.Connection) -> None:
        while not conn.execute("SELECT pg_try_advisory_lock(%s)", [LOCK_KEY]).fetchone()[0]:
            if self._halt.wait(LOCK_RETRY_SECONDS):
                return
        conn.execute(f"LISTEN {OUTBOX_CHANNEL}")
        self.listening.set()
        self._catch_up()
        while not self._halt.is_set():
            for note in conn.notifies(timeout=1.0):  # returns after a quiet second, to look at _stop
                ids = ids_from_payload(note.payload)
                if ids:
                    self._enqueue(ids)

    def _enqueue(self, ids: list[int]) -> None:
        from safety_admin.notifications.services import notification_enqueue

        try:
            notification_enqueue([(i, 1) for i in ids])
        except RedisError:
            log.warning("notification enqueue failed; the sweep will retry",
                        extra={"event": "notification.enqueue_failed", "count": len(ids)})  # fmt: skip

    def _catch_up(self) -> None:
        from safety_admin.notifications.services import notification_sweep

        try:
            notification_sweep()
        except Exception:
            log.exception("outbox catch-up sweep failed", extra={"event": "sweep.failed"})
        finally:
            connections.close_all()
