import sys

from django.apps import AppConfig


class OverviewConfig(AppConfig):
    """The staff overview page; also starts an RQ worker's own metrics endpoint when configured."""

    name = "safety_admin.overview"
    label = "overview"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.conf import settings

        # Containers cannot share PROMETHEUS_MULTIPROC_DIR (pids collide), so each worker serves its
        # own counters on SAFETY_WORKER_METRICS_PORT. Only the rqworker command does; migrate etc. never.
        if settings.SAFETY_WORKER_METRICS_PORT and "rqworker" in sys.argv[1:2]:
            from safety_admin.metrics import worker_exporter_start

            worker_exporter_start(settings.SAFETY_WORKER_METRICS_PORT)
