"""Several INSERTs in one SQL statement: one round trip to PostgreSQL instead of one per row.

The request path writes a handful of rows per call (an escalation and its outbox rows, say). Each
``save()`` is a round trip; on a loaded two-core machine each round trip costs a scheduling slice of both
processes, which is most of the time a request spends. ``insert_together`` sends the rows as data-modifying
CTEs of one statement (``WITH w0 AS (INSERT … RETURNING id), w1 AS (INSERT … VALUES ((SELECT id FROM w0), …))
SELECT …``); a later row may point at an earlier one's generated key. PostgreSQL runs a statement atomically,
so it needs no BEGIN/COMMIT of its own; inside a transaction it is simply part of it.

``insert_then`` puts rows in front of another INSERT (an audit event from ``audits.services.audit_event_prepare``)
so that a request and its audit event are one statement: atomic by itself, so the caller needs no
BEGIN/COMMIT round trips either.

The rows are prepared as ``save()`` would (``pre_save`` for auto_now fields, ``get_db_prep_save``), but
``save()``'s signals are not sent: use this only for models without signal receivers. Other databases get
one INSERT per row through the same SQL, so behaviour is the same everywhere.
"""

from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache

from django.db import DEFAULT_DB_ALIAS, connection, connections, models, transaction
from django.db.models.fields import NOT_PROVIDED


@dataclass
class Row:
    """An unsaved instance, and which of its foreign keys take the key of an earlier row in the batch.

    ``announce``: a PostgreSQL NOTIFY channel; the statement also sends ``NOTIFY <channel>, '<key>,<key>…'`` with
    the keys of every row that names it, delivered when the transaction commits (dropped on rollback).
    """

    instance: models.Model
    refs: dict[str, int] = field(default_factory=dict)  # field name -> index of the row it points at
    announce: str = ""


@lru_cache(maxsize=64)
def _layout(model: type[models.Model], vendor: str) -> tuple[str, str, tuple[tuple[models.Field, str], ...]]:
    """(quoted table, quoted pk column, (field, quoted column) for every column the INSERT writes)."""
    qn = connections[DEFAULT_DB_ALIAS].ops.quote_name
    meta = model._meta
    fields = tuple((f, qn(f.column)) for f in meta.local_concrete_fields if not (f.primary_key and f.db_returning))
    return qn(meta.db_table), qn(meta.pk.column), fields


def _values(instance: models.Model, refs: dict[str, int], ref_sql) -> tuple[tuple[str, ...], list[str], list]:
    """(quoted columns, placeholders, parameters) of one instance's row; ``ref_sql(i)`` renders row ``i``'s key.

    Nullable columns that are None and have no database default are left out: the database stores NULL anyway,
    and each parameter left out is one less to prepare and send.
    """
    conn = connections[DEFAULT_DB_ALIAS]  # the wrapper itself: the ``connection`` proxy costs a lookup per use
    _table, _pk, fields = _layout(type(instance), conn.vendor)
    referenced = {instance._meta.get_field(name).column: index for name, index in refs.items()}
    names, placeholders, params = [], [], []
    for f, column in fields:
        index = referenced.get(f.column)
        if index is not None:
            names.append(column)
            placeholders.append(ref_sql(index))
            continue
        value = f.pre_save(instance, True)
        if value is None and f.null and f.db_default is NOT_PROVIDED:
            continue
        names.append(column)
        placeholders.append("%s")
        params.append(f.get_db_prep_save(value, conn))
    return tuple(names), placeholders, params


def _insert_sql(instance: models.Model, refs: dict[str, int], ref_sql) -> tuple[str, list]:
    """``INSERT … RETURNING <pk> AS pk`` for one instance."""
    table, pk, _fields = _layout(type(instance), connection.vendor)
    names, placeholders, params = _values(instance, refs, ref_sql)
    return f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join(placeholders)}) RETURNING {pk} AS pk", params


@lru_cache(maxsize=256)
def _numbered(sql: str) -> str | None:
    """``sql`` with its ``%s`` placeholders numbered as PostgreSQL's ``$1, $2…``; None when it holds any other ``%``.

    psycopg converts ``%s`` itself on every execute and caches the result only for statements of at most 50
    parameters: an escalation with its request and two outbox rows has more, and converting it again on each
    request cost a third of what the outbox rows add to the request path. The statements here are the same text
    on every call (only their parameters change), so the conversion is done once per text, here.
    """
    pieces = sql.split("%s")
    if any("%" in piece for piece in pieces):
        return None
    return "".join(f"{piece}${n}" for n, piece in enumerate(pieces[:-1], 1)) + pieces[-1]


@contextmanager
def _execute(sql: str, params: list):
    """Run ``sql`` on the PostgreSQL backend's server-binding cursor (prepared statements) where there is one,
    numbered (``_numbered``) when it can be; yields the cursor."""
    server_bound = getattr(connection, "server_bound_cursor", None)
    numbered = _numbered(sql) if server_bound else None
    if numbered is not None:
        cursor, sql = server_bound(numbered=True), numbered
    else:
        cursor = server_bound() if server_bound else connection.cursor()
    with cursor:
        cursor.execute(sql, params)
        yield cursor


def _saved(instance: models.Model, pk) -> None:
    instance.pk = instance._meta.pk.to_python(pk)
    instance._state.adding = False
    instance._state.db = connection.alias


def _check(rows: list[Row]) -> None:
    for position, row in enumerate(rows):
        if any(index >= position for index in row.refs.values()):
            raise ValueError("a row may only point at an earlier row")


def _ctes(rows: list[Row]) -> tuple[list[str], list, list[list[int]], list[str]]:
    """The data-modifying CTEs ``w0, w1, …`` and their parameters, and which rows each CTE inserts.

    Consecutive rows of one model with the same columns that no other row points at share one multi-row
    INSERT (an escalation's outbox rows, say): one executor node. RETURNING gives their keys in VALUES order,
    as Django's bulk_create also relies on. Announced rows add one ``n…`` CTE per channel (``_with_notifies``).
    """
    _check(rows)
    pointed_at = {index for row in rows for index in row.refs.values()}
    cte_of: dict[int, int] = {}
    groups: list[list[int]] = []
    shapes: list[tuple] = []  # per CTE: (model, columns, channel, may grow)
    values: list[list[str]] = []
    params: list[list] = []
    for index, row in enumerate(rows):
        names, placeholders, row_params = _values(row.instance, row.refs, lambda i: f"(SELECT pk FROM w{cte_of[i]})")
        shape = (type(row.instance), names, row.announce)
        if groups and index not in pointed_at and shapes[-1] == (*shape, True):
            groups[-1].append(index)
        else:
            groups.append([index])
            shapes.append((*shape, index not in pointed_at))
            values.append([])
            params.append([])
        cte_of[index] = len(groups) - 1
        values[-1].append(f"({', '.join(placeholders)})")
        params[-1].extend(row_params)
    parts = []
    announced: dict[str, list[int]] = {}
    for number, ((model, names, channel, _grows), rows_sql) in enumerate(zip(shapes, values, strict=True)):
        table, pk, _fields = _layout(model, connection.vendor)
        parts.append(f"w{number} AS (INSERT INTO {table} ({', '.join(names)}) VALUES {', '.join(rows_sql)} "
                     f"RETURNING {pk} AS pk)")  # fmt: skip
        if channel:
            announced.setdefault(channel, []).append(number)
    flat = [p for group in params for p in group]
    notifies = []
    for number, (channel, ctes) in enumerate(announced.items()):
        keys = " UNION ALL ".join(f"SELECT pk FROM w{i}" for i in ctes)
        notifies.append(f"n{number}")
        parts.append(f"n{number} AS (SELECT pg_notify(%s, (SELECT string_agg(pk::text, ',') FROM ({keys}) k)))")
        flat.append(channel)
    return parts, flat, groups, notifies


def _with_notifies(parts: list[str], notifies: list[str], select: str) -> str:
    """``WITH <parts> <select>``, joined to the ``notifies`` CTEs so that their NOTIFYs run (PostgreSQL
    evaluates a CTE without side effects only when the query reads it)."""
    if notifies:
        select = f"SELECT q.* FROM ({select}) q, {', '.join(notifies)}"
    return f"WITH {', '.join(parts)} {select}"


def _insert_one_by_one(rows: list[Row]) -> None:
    for row in rows:
        for name, index in row.refs.items():
            setattr(row.instance, name, rows[index].instance)
        sql, params = _insert_sql(row.instance, {}, None)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            _saved(row.instance, cursor.fetchone()[0])


def insert_together(rows: list[Row]) -> None:
    """Insert ``rows`` in order (one statement on PostgreSQL); sets each instance's pk and foreign keys."""
    if not rows:
        return
    if connection.vendor != "postgresql":
        _check(rows)
        _insert_one_by_one(rows)
        return
    parts, params, groups, notifies = _ctes(rows)
    keys = " UNION ALL ".join(f"(SELECT {i} AS n, pk::text FROM w{i})" for i in range(len(groups)))
    with _execute(_with_notifies(parts, notifies, keys), params) as cursor:
        found: dict[int, list] = {}
        for number, pk in cursor.fetchall():
            found.setdefault(number, []).append(pk)
    for number, members in enumerate(groups):
        for index, pk in zip(members, found[number], strict=True):
            _saved(rows[index].instance, pk)
    for row in rows:
        for name, target in row.refs.items():
            setattr(row.instance, name, rows[target].instance)


def insert_then(rows: list[Row], sql: str, params: list) -> tuple:
    """Insert ``rows``, then run ``sql`` (an ``INSERT … RETURNING …``) as one statement; returns its first row.

    The rows' keys must be set in Python (UUIDs): only ``sql``'s result comes back. PostgreSQL: one round trip,
    atomic without a transaction of its own, so a caller in autocommit mode pays no BEGIN/COMMIT round trips
    either. Elsewhere: the same statements one by one, in a transaction.
    """
    if any(row.instance.pk is None for row in rows):
        raise ValueError("insert_then needs rows whose keys are set in Python")
    if any(row.announce for row in rows):
        raise ValueError("insert_then does not announce rows; use insert_together")
    if connection.vendor != "postgresql":
        with transaction.atomic():
            _check(rows)
            _insert_one_by_one(rows)
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchone()
    parts, row_params, _groups, _notifies = _ctes(rows)  # no announced rows here (checked above)
    with _execute(f"WITH {', '.join(parts)} {sql}", [*row_params, *params]) as cursor:
        result = cursor.fetchone()
    for row in rows:
        _saved(row.instance, row.instance.pk)
    return result
