"""gunicorn settings shared by `make run`, the benchmarks and deploy/: Prometheus multiprocess cleanup."""

import os

bind = f"127.0.0.1:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
graceful_timeout = 20
timeout = 30
accesslog = None


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
