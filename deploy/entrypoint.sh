#!/bin/sh
# Container entry point: `web` (gunicorn), `worker [queues...]` (RQ), `migrate`, or any command.
set -eu

role="${1:-web}"
[ "$#" -gt 0 ] && shift

case "$role" in
  web)
    # gunicorn's processes share one multiprocess directory; it must start empty (pids are reused).
    export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-/tmp/prometheus}"
    rm -rf "$PROMETHEUS_MULTIPROC_DIR"
    mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
    exec gunicorn -c gunicorn.conf.py safety_admin.wsgi:application
    ;;
  worker)
    # One SimpleWorker per container; it serves its own metrics on SAFETY_WORKER_METRICS_PORT.
    export SAFETY_WORKER_METRICS_PORT="${SAFETY_WORKER_METRICS_PORT:-9100}"
    if [ "$#" -eq 0 ]; then set -- inference notifications default; fi
    exec python manage.py rqworker "$@" --with-scheduler \
      --worker-class safety_admin.inference.worker.SafetyWorker
    ;;
  migrate)
    exec python manage.py migrate --noinput
    ;;
  *)
    exec "$role" "$@"
    ;;
esac
