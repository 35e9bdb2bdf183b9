"""The one boundary to PagerDuty: POST an Events API v2 event to PAGERDUTY_EVENTS_URL.

A small http.client call with separate connect and read timeouts and no redirects. No retries here:
the outbox retries with backoff (see docs/notifications.md). 202 is success; timeouts, 429 and 5xx are
transient; any other answer (400 for a bad routing key or event) is permanent.
"""

import http.client
import json
import ssl
from urllib.parse import urlsplit

from django.conf import settings

from safety_admin.notifications.errors import DeliveryError, is_transient_status, retry_after_seconds

NOT_HTTP = "PAGERDUTY_EVENTS_URL is not an http(s) URL"


def pagerduty_send(event: dict) -> dict:
    """Send one event; returns PagerDuty's JSON answer (``{"status": "success", "dedup_key": ...}``)."""
    parts = urlsplit(settings.PAGERDUTY_EVENTS_URL)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise DeliveryError(NOT_HTTP, transient=False)
    conn_cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    kwargs = {"context": ssl.create_default_context()} if parts.scheme == "https" else {}
    conn = conn_cls(parts.hostname, parts.port, timeout=settings.NOTIFICATION_CONNECT_TIMEOUT, **kwargs)
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    try:
        conn.connect()
        conn.sock.settimeout(settings.NOTIFICATION_READ_TIMEOUT)
        body = json.dumps(event).encode()
        conn.request(
            "POST", path, body=body, headers={"Content-Type": "application/json", "Accept": "application/json"}
        )
        response = conn.getresponse()
        status = response.status
        headers = {k.lower(): v for k, v in response.getheaders()}
        raw = response.read(64 * 1024)
    except TimeoutError:
        raise DeliveryError("PagerDuty timed out", transient=True) from None
    except (OSError, http.client.HTTPException) as exc:
        raise DeliveryError(f"PagerDuty unreachable: {type(exc).__name__}", transient=True) from None
    finally:
        conn.close()
    try:
        answer = json.loads(raw or b"{}")
    except ValueError:
        answer = {}
    if not isinstance(answer, dict):
        answer = {}
    if 200 <= status < 300:
        return answer
    detail = "; ".join(str(e) for e in answer.get("errors", []) if e) or str(answer.get("message", ""))
    reason = f"PagerDuty answered {status}" + (f": {detail}" if detail else "")
    raise DeliveryError(reason, transient=is_transient_status(status), status=status,
                        retry_after=retry_after_seconds(headers))  # fmt: skip
