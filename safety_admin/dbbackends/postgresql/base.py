"""PostgreSQL backend: django_prometheus's (query metrics), with a cheaper connection health check and a
server-binding cursor for the request path's hot statements.

Django's CONN_HEALTH_CHECKS sends ``SELECT 1`` before the first query of every request: one extra round
trip on each POST /safety/infer, about a tenth of what the gateway spends in PostgreSQL. Here a connection
that committed within the last ``HEALTH_CHECK_GRACE`` seconds counts as healthy without asking; one that has
been idle longer is checked as before. After an outage, a connection that was busy right up to it can fail
one request (503, fail closed) and is then closed and replaced, as Django does on any connection error.
"""

import time
from functools import cached_property

import psycopg
from django_prometheus.db.backends.postgresql.base import DatabaseWrapper as PrometheusDatabaseWrapper
from django_prometheus.db.common import ExportingCursorWrapper

HEALTH_CHECK_GRACE = 1.0


class DatabaseWrapper(PrometheusDatabaseWrapper):
    _committed_at = float("-inf")

    def _commit(self):
        super()._commit()
        self._committed_at = time.monotonic()

    def close_if_health_check_failed(self):
        if self.connection is not None and time.monotonic() - self._committed_at < HEALTH_CHECK_GRACE:
            self.health_check_done = True
            return
        super().close_if_health_check_failed()

    def close(self):
        self._committed_at = float("-inf")
        super().close()

    def server_bound_cursor(self, *, numbered: bool = False):
        """A cursor whose statements psycopg binds on the server, and prepares once one has run five times.

        Django's cursors bind on the client: every call quotes each parameter into the SQL text and PostgreSQL
        parses and plans it afresh. ``safety_admin.db`` sends the request path's INSERTs (the same text on every
        request) through this one instead, which costs less CPU on both sides. It is a normal Django cursor
        otherwise: errors become ``django.db`` errors, queries are logged under DEBUG and counted in metrics.
        Prepared statements live per connection, so behind a pooler in transaction mode (PgBouncer) set
        ``DB_PREPARE_THRESHOLD=0`` (settings.py; default 5).

        ``numbered``: the statement's placeholders are PostgreSQL's own ``$1, $2…`` (psycopg's RawCursor), which
        psycopg then sends as they are instead of converting ``%s`` (see ``safety_admin.db._numbered``).
        """
        self.close_if_health_check_failed()
        self.ensure_connection()
        cursor_class = self._numbered_cursor_class if numbered else self._server_cursor_class
        with self.wrap_database_errors:
            return self._prepare_cursor(cursor_class(self.connection))

    @cached_property
    def _server_cursor_class(self):
        """psycopg's server-binding cursor, counted in django_prometheus's query metrics like the others."""
        return ExportingCursorWrapper(psycopg.Cursor, self.alias, self.vendor)

    @cached_property
    def _numbered_cursor_class(self):
        return ExportingCursorWrapper(psycopg.RawCursor, self.alias, self.vendor)
