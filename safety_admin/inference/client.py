"""The one boundary to the model: an OpenAI-compatible /v1/chat/completions client.

Connect and read timeouts, no redirects at all (so never off-host), a cap on the response size,
and errors sorted into transient (retry: timeouts, 429, 5xx, garbage) and permanent (other 4xx).
"""

import http.client
import json
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

from safety_admin.inference.demo import demo_complete


class ModelError(Exception):
    """The model call failed; ``transient`` says whether a retry may help."""

    def __init__(self, reason: str, *, transient: bool, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.transient = transient
        self.retry_after = retry_after


@dataclass(frozen=True)
class ModelAnswer:
    text: str
    truncated: bool
    model: str


def _post(url: str, payload: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes, bool]:
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ModelError(f"MODEL_API_URL is not an http(s) URL: {url!r}", transient=False)
    conn_cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    kwargs = {"context": ssl.create_default_context()} if parts.scheme == "https" else {}
    conn = conn_cls(parts.hostname, parts.port, timeout=settings.MODEL_CONNECT_TIMEOUT, **kwargs)
    try:
        conn.connect()
        conn.sock.settimeout(settings.MODEL_READ_TIMEOUT)
        conn.request("POST", parts.path or "/", body=payload, headers=headers)
        response = conn.getresponse()
        cap = settings.MODEL_MAX_RESPONSE_BYTES
        body = response.read(cap + 1)
        truncated = len(body) > cap
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body[:cap], truncated
    except TimeoutError:
        raise ModelError("model API timed out", transient=True) from None
    except (ConnectionError, OSError, http.client.HTTPException) as exc:
        raise ModelError(f"model API unreachable: {type(exc).__name__}", transient=True) from None
    finally:
        conn.close()


def _retry_after(headers: dict[str, str]) -> float | None:
    try:
        return max(0.0, float(headers.get("retry-after", "")))
    except ValueError:
        return None


def model_complete(messages: list[dict], *, model: str = "") -> ModelAnswer:
    """Send ``messages`` to the model and return its answer (cut to MODEL_MAX_OUTPUT_CHARS)."""
    if not settings.MODEL_API_URL:
        return ModelAnswer(text=demo_complete(messages), truncated=False, model="demo")
    name = model or settings.MODEL_NAME
    payload = json.dumps({"model": name, "messages": messages}).encode()
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if settings.MODEL_API_KEY:
        headers["Authorization"] = f"Bearer {settings.MODEL_API_KEY}"
    status, resp_headers, body, cut = _post(f"{settings.MODEL_API_URL}/v1/chat/completions", payload, headers)
    if status == 429 or status >= 500:
        raise ModelError(f"model API answered {status}", transient=True, retry_after=_retry_after(resp_headers))
    if status != 200:
        raise ModelError(f"model API answered {status}", transient=False)
    text, truncated = _extract_text(body, cut)
    limit = settings.MODEL_MAX_OUTPUT_CHARS
    if len(text) > limit:
        text, truncated = text[:limit], True
    return ModelAnswer(text=text, truncated=truncated, model=name)


def _extract_text(body: bytes, cut: bool) -> tuple[str, bool]:
    try:
        data = json.loads(body.decode("utf-8"))
        content = data["choices"][0]["message"]["content"]
    except (UnicodeDecodeError, ValueError, KeyError, IndexError, TypeError):
        if cut:
            # An answer larger than the cap cannot be parsed whole; it is cut, never stored whole.
            raise ModelError("model answer larger than MODEL_MAX_RESPONSE_BYTES", transient=False) from None
        raise ModelError("model API returned an unreadable answer", transient=True) from None
    if not isinstance(content, str):
        raise ModelError("model API returned an answer without text", transient=True)
    return content, cut
