"""The project's RQ worker: SimpleWorker (no fork per job) that also runs the periodic sweeps.

Use: ``python manage.py rqworker inference notifications --worker-class safety_admin.inference.worker.SafetyWorker``.
A worker that serves the ``notifications`` queue also listens for new outbox rows (PostgreSQL NOTIFY) and
enqueues their delivery jobs, and (AUDIT_SEALER=workers, the default) chains committed audit events every
AUDIT_SEAL_SECONDS. Every ``INFERENCE_SWEEP_SECONDS`` the worker re-enqueues requests and
notifications whose jobs vanished. Running it in every worker is safe: the sweeps are idempotent.
"""

import logging

from django.conf import settings
from django.db import close_old_connections, connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq.worker import SimpleWorker

log = logging.getLogger(__name__)

SWEEPS = [
    "safety_admin.inference.services.inference_sweep",
    "safety_admin.notifications.services.notification_sweep",
    # Events whose process died before its sealer ran are chained here at the latest.
    "audits.services.audit_chain_seal",
]


class SafetyWorker(SimpleWorker):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.maintenance_interval = settings.INFERENCE_SWEEP_SECONDS
        self.outbox_listener = None

    def work(self, *args, **kwargs):
        # New notification rows arrive by PostgreSQL NOTIFY (see notifications/listener.py); on SQLite the
        # web process hands them over itself.
        if connection.vendor == "postgresql" and "notifications" in self.queue_names():
            from safety_admin.notifications.listener import OutboxListener

            self.outbox_listener = OutboxListener()
            self.outbox_listener.start()
        if settings.AUDIT_SEALER == "workers":
            from audits import sealer

            sealer.start_periodic(settings.AUDIT_SEAL_SECONDS)
        try:
            return super().work(*args, **kwargs)
        finally:
            if self.outbox_listener is not None:
                self.outbox_listener.stop()

    @property
    def dequeue_timeout(self) -> int:
        # Wake up at least once per sweep interval even when idle, so the sweeps run on time.
        return max(1, min(self.worker_ttl - 15, settings.INFERENCE_SWEEP_SECONDS))

    def run_maintenance_tasks(self):
        self._survive("maintenance", super().run_maintenance_tasks)
        from django.utils.module_loading import import_string

        for path in SWEEPS + list(getattr(settings, "EXTRA_SWEEPS", [])):
            close_old_connections()
            try:
                counts = import_string(path)()
                if isinstance(counts, int):  # a sweep may return a bare count
                    counts = {"count": counts}
                if counts and any(counts.values()):
                    log.info("sweep", extra={"event": "sweep", "sweep": path, **counts})
            except Exception:
                # A sweep must never take the worker down; the next interval tries again.
                log.exception("sweep failed", extra={"event": "sweep.failed", "sweep": path})
            finally:
                close_old_connections()

    # RQ's main loop backs off and retries when Redis fails while it waits for a job, but quits on a Redis error
    # anywhere else in the loop: the suspension check, the maintenance run, the heartbeat after a job, a job's
    # bookkeeping. An outage that begins at one of those moments would stop the worker for good (it happened in
    # the outage test, about once in twenty runs). These steps outlive it instead: the wait for the next job
    # meets the outage and backs off as RQ intends, and the job itself changed nothing unless its row said so.
    def _survive(self, step: str, call, *args, **kwargs):
        try:
            return call(*args, **kwargs)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            log.warning(
                "Redis unreachable during the worker's %s; carrying on (the next wait for a job retries)",
                step,
                extra={"event": "worker.redis_unreachable", "step": step, "error": type(exc).__name__},
            )
            return None

    def check_for_suspension(self, burst: bool):
        return self._survive("suspension check", super().check_for_suspension, burst)

    def heartbeat(self, *args, **kwargs):
        return self._survive("heartbeat", super().heartbeat, *args, **kwargs)

    def execute_job(self, job, queue):
        return self._survive("job bookkeeping", super().execute_job, job, queue)

    def perform_job(self, job, queue):
        close_old_connections()
        try:
            return super().perform_job(job, queue)
        finally:
            close_old_connections()
