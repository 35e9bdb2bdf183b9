"""Chains committed audit events from a background thread, so the request path never waits on sealing.

``audit_event_record`` asks for a seal after its transaction commits (``request_seal``; ``AUDIT_SEALER`` says
who seals). By default outside tests (``workers``) the writer does nothing more: every RQ worker checks for
pending events every ``AUDIT_SEAL_SECONDS`` and wakes its own sealer thread, so web processes never spend time
on the chain. With ``thread`` each writing process wakes its own daemon thread, which waits ``COALESCE_SECONDS`` for
more commits to arrive, then seals everything pending (in every process) in one call, so under load many
requests' events share one seal (sealing one event per call costs about four times the CPU per event of
sealing fifty). Nothing is lost if the process dies first: the events are committed, and the next sealer
(any writer, the workers' periodic sweep, or ``verify_audit_chain``) chains them.
"""

import atexit
import logging
import os
import threading
import time

from django.conf import settings
from django.db import connection

log = logging.getLogger(__name__)

_lock = threading.Lock()
_wake = threading.Event()
_idle = threading.Event()
_idle.set()
_owner_pid = 0  # the process whose thread serves _wake; a forked child starts its own


def _seal_now() -> bool:
    from audits.services import audit_chain_seal

    try:
        audit_chain_seal()
    except Exception:  # the database may be down; pending events are sealed by the next sealer
        log.exception("audit chain sealing failed", extra={"event": "audits.seal_failed"})
        return False
    return True


IDLE_CLOSE_SECONDS = 30.0
# How long a woken sealer lets further commits gather before it seals: the chain trails commits by this much
# more, and each process seals at most about 1 / COALESCE_SECONDS times a second whatever the event rate.
COALESCE_SECONDS = 0.025
_close = threading.Event()


def _past_max_age() -> bool:
    return connection.close_at is not None and time.monotonic() >= connection.close_at


def _run() -> None:
    while True:
        woken = _wake.wait(IDLE_CLOSE_SECONDS)
        if woken and not _close.is_set():
            time.sleep(COALESCE_SECONDS)
        _wake.clear()
        if not woken or _close.is_set():
            # Idle for a while, or asked to: give the database connection back.
            _close.clear()
            connection.close()
        else:
            sealed = _seal_now()
            if not sealed or _past_max_age():
                # This thread's own connection. Not after every seal: Django then checks the connection with
                # an extra query at its next use, which cost a third of a sealing round.
                connection.close_if_unusable_or_obsolete()
            if not sealed and connection.connection is None:
                _seal_now()  # the connection had died (a database restart): once more on a fresh one
        if not _wake.is_set():
            _idle.set()


def _ensure_thread() -> None:
    global _wake, _idle, _owner_pid
    pid = os.getpid()
    if _owner_pid == pid:
        return
    with _lock:
        if _owner_pid != pid:
            if _owner_pid:  # forked: the parent's thread does not exist here
                _wake, _idle = threading.Event(), threading.Event()
            threading.Thread(target=_run, name="audit-sealer", daemon=True).start()
            _owner_pid = pid


def request_seal() -> None:
    """Called after a commit that recorded events; what it does depends on ``AUDIT_SEALER``:

    ``inline`` seals here and now (tests: assertions see ``seq`` at once); ``thread`` wakes this process's
    sealer thread; ``workers`` does nothing: the RQ workers' periodic sealer (``start_periodic``) chains the
    event within ``AUDIT_SEAL_SECONDS``, so web processes spend nothing on sealing.
    """
    mode = settings.AUDIT_SEALER
    if mode == "inline":
        _seal_now()
    elif mode == "thread":
        _wake_thread()


def _wake_thread() -> None:
    _ensure_thread()
    _idle.clear()
    _wake.set()


def start_periodic(interval: float) -> threading.Thread:
    """In an RQ worker: chain what any process committed, checking every ``interval`` seconds.

    The check is one indexed query (``audits_pending_seal``); only when events are pending is the sealer
    thread woken, which then seals everything pending in one call.
    """

    def tick() -> None:
        from audits.models import AuditEvent

        while True:
            time.sleep(interval)
            try:
                if AuditEvent.objects.filter(seq__isnull=True).exists():
                    _wake_thread()
            except Exception:  # the database may be down: try again next tick, on a fresh connection
                log.warning("audit seal check failed", extra={"event": "audits.seal_failed"})
                connection.close()

    thread = threading.Thread(target=tick, name="audit-seal-ticker", daemon=True)
    thread.start()
    return thread


def wait_idle(timeout: float = 5.0) -> bool:
    """Wait until the background sealer has nothing left to do; False on timeout."""
    return _idle.wait(timeout)


def release_connection(timeout: float = 5.0) -> bool:
    """Make the sealer thread close its database connection (tests drop their database afterwards)."""
    if _owner_pid != os.getpid():
        return True
    _idle.clear()
    _close.set()
    _wake.set()
    return _idle.wait(timeout)


# A short grace at exit, so a command that just recorded events leaves them chained.
atexit.register(wait_idle, 1.0)
