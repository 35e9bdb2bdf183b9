"""The pipeline's own Prometheus metrics (DESIGN.md §7).

Labels are low-cardinality by construction: outcomes, reason codes, severities, directions.
Never a user id or free text. Gauges declare a multiprocess mode so several gunicorn processes
and RQ workers can share PROMETHEUS_MULTIPROC_DIR.
"""

from prometheus_client import Counter, Gauge, Histogram

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
