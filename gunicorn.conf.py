"""gunicorn settings shared by `make run`, the tests, the benchmarks and deploy/.

Environment: PORT (default 8000), GUNICORN_BIND (default 127.0.0.1:$PORT; the container image sets
0.0.0.0:8000), WEB_CONCURRENCY (processes, default 2), GUNICORN_THREADS (default 1),
GUNICORN_TIMEOUT (default 30 s), GUNICORN_ACCESS_LOG (1 = JSON access lines).
Prometheus multiprocess files of dead workers are marked so their live gauges
disappear (counters are kept, as prometheus_client intends).
"""

import os

bind = os.environ.get("GUNICORN_BIND") or f"127.0.0.1:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
# Kubernetes sends SIGTERM after the pod leaves the Service; in-flight requests get this long to finish.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "20"))
keepalive = 5
# Heartbeat files on tmpfs: a slow overlay filesystem must not get workers killed as "hung".
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# Access log (GUNICORN_ACCESS_LOG=1): one JSON line per request with the trace id the app put in X-Trace-Id.
# The path never carries prompt text (the API takes it in the body) and the query string is left out.
accesslog = "-" if os.environ.get("GUNICORN_ACCESS_LOG", "") in {"1", "true", "yes", "on"} else None
access_log_format = (
    '{"time": "%(t)s", "level": "info", "logger": "gunicorn.access", "event": "http.access", "method": "%(m)s", '
    '"path": "%(U)s", "status": %(s)s, "duration_ms": %(M)s, "bytes": "%(B)s", "trace_id": "%({x-trace-id}o)s"}'
)
errorlog = "-"
# Trust X-Forwarded-* only from the addresses the operator lists (the ingress / load balancer).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


def post_worker_init(worker):
    """Compile the active policy before the first request, so no request pays for it (or times out on it)."""
    try:
        from safety_admin.policies.runtime import current_state

        current_state()
    except Exception:  # the database may be down at boot; the first request retries and fails closed
        worker.log.warning("policy not loaded at worker start; the first request will load it")


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


if os.environ.get("SAFETY_LOG_JSON", "") in {"1", "true", "yes", "on"}:
    from gunicorn.glogging import Logger

    class JsonLogger(Logger):
        """gunicorn's own lines (boot, worker exits, timeouts) as JSON too, like the app's."""

        def setup(self, cfg):
            super().setup(cfg)
            from safety_admin.logging import JsonFormatter

            for handler in self.error_log.handlers:
                handler.setFormatter(JsonFormatter())

    logger_class = JsonLogger
