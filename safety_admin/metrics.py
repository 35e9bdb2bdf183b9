"""The pipeline's own Prometheus metrics (DESIGN.md §7).

Labels are low-cardinality by construction: outcomes, reason codes, severities, directions, queue
names, channels. Never a user id or free text. Counters and histograms live in the process that
changes them; with ``PROMETHEUS_MULTIPROC_DIR`` set (``make run``, the tests) every gunicorn
process and RQ worker on one host writes its own file and ``/metrics`` adds them up.

Gauges that describe shared state (queue depth, pending reviews, oldest pending review, live
workers, the notification outbox) are not kept in any process: ``StateCollector`` reads Redis and the database at scrape
time, so every web process reports the same truth however many of them there are.
"""

import logging
import os
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily

log = logging.getLogger(__name__)

REQUESTS = Counter("safety_requests", "Requests to /safety/infer by outcome", ["outcome"])
REFUSALS = Counter("safety_refusals", "Refusals by reason code", ["reason_code"])
ESCALATIONS = Counter("safety_escalations", "Escalations created by severity", ["severity"])
DETECTION_LATENCY = Histogram(
    "safety_detection_latency_seconds",
    "Time spent in the detectors",
    ["direction"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25),
)
INFERENCE_OUTCOMES = Counter("safety_inference_outcomes", "Worker outcomes of inference jobs", ["status"])
REVIEW_DECISIONS = Counter("safety_review_decisions", "Review decisions", ["decision", "severity"])
REDIS_HEALTHY = Gauge("safety_redis_healthy", "1 when Redis answered the last check", multiprocess_mode="mostrecent")
AUDIT_DB_HEALTHY = Gauge(
    "safety_audit_db_healthy", "1 when the database answered the last check", multiprocess_mode="mostrecent"
)

QUEUES = ("inference", "notifications", "default")
SEVERITIES = ("low", "medium", "high", "critical")
CHANNELS = ("slack", "pagerduty")
ATTEMPT_OUTCOMES = ("delivered", "retry", "failed", "abandoned")


class StateCollector:
    """Scrape-time gauges read from Redis and the database (never from process memory).

    Each part fails on its own: when Redis is down the queue gauges are left out (and
    ``safety_redis_healthy`` says why), the review gauges still come from the database.
    """

    def __init__(self, *, redis_ok: bool = True, db_ok: bool = True):
        # A part already known to be down is skipped rather than waited for (each try costs a connect timeout).
        self.redis_ok = redis_ok
        self.db_ok = db_ok

    def describe(self):
        # An empty describe() keeps registration from calling collect() (which would touch the DB at import).
        return []

    def collect(self):
        started = time.perf_counter()
        if self.redis_ok:
            yield from self._queues()
        if self.db_ok:
            yield from self._reviews()
            yield from self._notifications()
            yield from self._audit()
        scrape = GaugeMetricFamily("safety_state_scrape_seconds", "Time spent reading queue and review state")
        scrape.add_metric([], time.perf_counter() - started)
        yield scrape

    def _queues(self):
        from rq import Queue, Worker

        from safety_admin.redis_conn import fast_redis

        try:
            conn = fast_redis()
            depth = GaugeMetricFamily("safety_queue_depth", "Jobs waiting in each RQ queue", labels=["queue"])
            workers = GaugeMetricFamily(
                "safety_rq_workers", "Live RQ workers listening on each queue", labels=["queue"]
            )
            live = Worker.all(connection=conn)
            for name in QUEUES:
                depth.add_metric([name], conn.llen(f"rq:queue:{name}"))
                queue = Queue(name, connection=conn)
                workers.add_metric([name], sum(1 for w in live if queue.name in w.queue_names()))
        except Exception as exc:  # Redis down: leave the queue gauges out rather than report zeros
            log.warning("queue state unavailable", extra={"event": "metrics.queues_unavailable",
                                                          "error": type(exc).__name__})  # fmt: skip
            return
        yield depth
        yield workers

    def _reviews(self):
        from django.db.models import Count, Min, Q
        from django.utils import timezone

        from review.models import Escalation

        try:
            now = timezone.now()
            # One pass over the pending rows (the review_queue_order index leads with status).
            rows = (
                Escalation.objects.filter(status="pending")
                .values("severity")
                .annotate(n=Count("id"), oldest=Min("created_at"), overdue=Count("id", filter=Q(due_at__lt=now)))
                .order_by()
            )
            by_severity = {row["severity"]: row for row in rows}
        except Exception as exc:
            log.warning("review state unavailable", extra={"event": "metrics.reviews_unavailable",
                                                           "error": type(exc).__name__})  # fmt: skip
            return
        pending = GaugeMetricFamily("safety_reviews_pending", "Escalations waiting for a decision", labels=["severity"])
        oldest = GaugeMetricFamily(
            "safety_review_oldest_pending_seconds", "Age of the oldest pending escalation", labels=["severity"]
        )
        breached = GaugeMetricFamily(
            "safety_reviews_overdue", "Pending escalations past their SLA due time", labels=["severity"]
        )
        for severity in SEVERITIES:
            row = by_severity.get(severity)
            pending.add_metric([severity], row["n"] if row else 0)
            oldest.add_metric([severity], (now - row["oldest"]).total_seconds() if row else 0)
            breached.add_metric([severity], row["overdue"] if row else 0)
        yield pending
        yield oldest
        yield breached

    def _notifications(self):
        from datetime import timedelta

        from django.db.models import Count, Min
        from django.utils import timezone

        from safety_admin.notifications.models import DeliveryAttempt, Notification

        try:
            now = timezone.now()
            hour_ago = now - timedelta(hours=1)
            pending = {
                row["channel"]: row
                for row in Notification.objects.filter(status="pending")
                .values("channel")
                .annotate(n=Count("id"), oldest=Min("created_at"))
                .order_by()
            }
            attempts = {
                (row["notification__channel"], row["outcome"]): row["n"]
                for row in DeliveryAttempt.objects.filter(finished_at__gte=hour_ago)
                .values("notification__channel", "outcome")
                .annotate(n=Count("id"))
                .order_by()
            }
            failed = dict(
                Notification.objects.filter(status="failed", updated_at__gte=hour_ago)
                .values("channel")
                .annotate(n=Count("id"))
                .values_list("channel", "n")
            )
        except Exception as exc:
            log.warning("notification state unavailable", extra={"event": "metrics.notifications_unavailable",
                                                                 "error": type(exc).__name__})  # fmt: skip
            return
        waiting = GaugeMetricFamily(
            "safety_notifications_pending", "Notifications not yet delivered", labels=["channel"]
        )
        oldest = GaugeMetricFamily(
            "safety_notification_oldest_pending_seconds",
            "Age of the oldest undelivered notification",
            labels=["channel"],
        )
        tries = GaugeMetricFamily(
            "safety_notification_attempts_last_hour",
            "Delivery attempts finished in the last hour by outcome (delivered, retry, failed, abandoned)",
            labels=["channel", "outcome"],
        )
        gave_up = GaugeMetricFamily(
            "safety_notifications_failed_last_hour", "Notifications given up on in the last hour", labels=["channel"]
        )
        for channel in CHANNELS:
            row = pending.get(channel)
            waiting.add_metric([channel], row["n"] if row else 0)
            oldest.add_metric([channel], (now - row["oldest"]).total_seconds() if row else 0)
            gave_up.add_metric([channel], failed.get(channel, 0))
            for outcome in ATTEMPT_OUTCOMES:
                tries.add_metric([channel, outcome], attempts.get((channel, outcome), 0))
        yield waiting
        yield oldest
        yield tries
        yield gave_up

    def _audit(self):
        """The trail's last verification and checkpoint (three indexed queries): the alerts for a broken chain,
        a verification that stopped running and a head left unsigned read these."""
        from audits.selectors import audit_chain_status

        try:
            status = audit_chain_status()
        except Exception as exc:
            log.warning("audit state unavailable", extra={"event": "metrics.audit_unavailable",
                                                          "error": type(exc).__name__})  # fmt: skip
            return
        if status.verified is not None:
            ok = GaugeMetricFamily(
                "safety_audit_chain_ok", "1 when the last chain verification passed, 0 when it failed"
            )
            ok.add_metric([], 1 if status.verified else 0)
            yield ok
        verified = GaugeMetricFamily(
            "safety_audit_last_verified_timestamp_seconds", "When the chain was last verified (0: never)"
        )
        verified.add_metric([], status.verified_at.timestamp() if status.verified_at else 0)
        signed = GaugeMetricFamily(
            "safety_audit_last_checkpoint_timestamp_seconds", "When the chain head was last signed (0: never)"
        )
        signed.add_metric([], status.checkpoint_at.timestamp() if status.checkpoint_at else 0)
        unsigned = GaugeMetricFamily("safety_audit_unsigned_events", "Chained events after the last signed checkpoint")
        unsigned.add_metric([], status.head_seq - (status.checkpoint_seq or 0))
        yield verified
        yield signed
        yield unsigned


def state_registry(*, redis_ok: bool = True, db_ok: bool = True) -> CollectorRegistry:
    """A registry holding only the scrape-time state collector (built per scrape, so never stale)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StateCollector(redis_ok=redis_ok, db_ok=db_ok))
    return registry


def worker_exporter_start(port: int, addr: str = "0.0.0.0") -> None:
    """Serve this process's metrics on ``port`` from a daemon thread (RQ workers in containers)."""
    from prometheus_client import REGISTRY, start_http_server
    from prometheus_client import multiprocess as mp

    registry = REGISTRY
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        mp.MultiProcessCollector(registry)
    start_http_server(port, addr=addr, registry=registry)
    log.info("worker metrics on :%s", port, extra={"event": "metrics.worker_exporter", "port": port})
