"""The one boundary to Slack: post (or update) one message through slack-sdk.

Two modes, chosen by settings: an incoming webhook (``SLACK_WEBHOOK``, post only) or a bot token +
channel (``SLACK_BOT_TOKEN``/``SLACK_CHANNEL`` against ``SLACK_API_URL``: ``chat.postMessage``, and
``chat.update`` with the kept channel + ``ts``). slack-sdk's own retry handlers are switched off
(``retry_handlers=[]``): the outbox retries with backoff, jitter and Retry-After, and records each try.
"""

import logging
from dataclasses import dataclass
from urllib.error import URLError

from django.conf import settings
from slack_sdk import WebClient, WebhookClient
from slack_sdk.errors import SlackApiError, SlackRequestError

from safety_admin.notifications.errors import DeliveryError, is_transient_status, retry_after_seconds

log = logging.getLogger(__name__)

NOT_CONFIGURED = "Slack is not configured (set SLACK_WEBHOOK, or SLACK_BOT_TOKEN and SLACK_CHANNEL)"
TRANSIENT_API_ERRORS = {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
METADATA_EVENT = "safety_admin_notification"


@dataclass(frozen=True)
class SlackResult:
    mode: str  # "webhook" or "bot"
    channel: str = ""
    ts: str = ""


def slack_mode() -> str:
    """``bot`` when a token and channel are set (updates in place), else ``webhook`` if set, else ``""``."""
    if settings.SLACK_BOT_TOKEN and settings.SLACK_CHANNEL:
        return "bot"
    if settings.SLACK_WEBHOOK:
        return "webhook"
    return ""


def _timeout() -> int:
    return max(1, round(settings.NOTIFICATION_CONNECT_TIMEOUT + settings.NOTIFICATION_READ_TIMEOUT))


def _web_client() -> WebClient:
    base = settings.SLACK_API_URL if settings.SLACK_API_URL.endswith("/") else settings.SLACK_API_URL + "/"
    return WebClient(token=settings.SLACK_BOT_TOKEN, base_url=base, timeout=_timeout(), retry_handlers=[])


def _already_posted(client: WebClient, channel: str, key: str) -> str:
    """The ``ts`` of a message we posted earlier for ``key`` (its response was lost), or ``""``.

    Best effort: conversations.history needs the channel id and the channels:history scope; any error
    means "not found", and the caller posts (at-least-once is the fallback, never at-most-once).
    """
    try:
        answer = client.conversations_history(channel=channel, limit=50, include_all_metadata=True)
    except (SlackApiError, SlackRequestError, URLError, OSError):
        return ""
    for message in answer.get("messages") or []:
        meta = message.get("metadata") or {}
        if meta.get("event_type") == METADATA_EVENT and (meta.get("event_payload") or {}).get("key") == key:
            return str(message.get("ts", ""))
    return ""


def slack_send(*, text: str, blocks: list[dict], key: str, update_ts: str = "", update_channel: str = "",
               check_existing: bool = False) -> SlackResult:  # fmt: skip
    """Post a message, or with ``update_ts`` (bot mode) edit it in place. Raises DeliveryError.

    ``key`` names the notification; in bot mode it rides along as message metadata so that a retry after a
    lost response (``check_existing``) finds the first post instead of posting a second one.
    """
    mode = slack_mode()
    try:
        if mode == "bot":
            client = _web_client()
            if update_ts:
                answer = client.chat_update(channel=update_channel, ts=update_ts, text=text, blocks=blocks)
                return SlackResult("bot", str(answer.get("channel", update_channel)), str(answer.get("ts", update_ts)))
            if check_existing:
                ts = _already_posted(client, settings.SLACK_CHANNEL, key)
                if ts:
                    log.info("slack message already posted", extra={"event": "notification.slack.found"})
                    return SlackResult("bot", settings.SLACK_CHANNEL, ts)
            answer = client.chat_postMessage(
                channel=settings.SLACK_CHANNEL,
                text=text,
                blocks=blocks,
                unfurl_links=False,
                unfurl_media=False,
                metadata={"event_type": METADATA_EVENT, "event_payload": {"key": key}},
            )
            return SlackResult("bot", str(answer.get("channel", "")), str(answer.get("ts", "")))
        if mode == "webhook":
            client = WebhookClient(settings.SLACK_WEBHOOK, timeout=_timeout(), retry_handlers=[])
            response = client.send(text=text, blocks=blocks, unfurl_links=False, unfurl_media=False)
            if response.status_code == 200:
                return SlackResult("webhook")
            raise DeliveryError(
                f"Slack webhook answered {response.status_code}: {(response.body or '')[:200]}",
                transient=is_transient_status(response.status_code),
                status=response.status_code,
                retry_after=retry_after_seconds(response.headers),
            )
    except SlackApiError as exc:
        status = exc.response.status_code
        error = exc.response.get("error", "") if isinstance(exc.response.data, dict) else ""
        raise DeliveryError(
            f"Slack API answered {status}: {error or 'error'}",
            transient=is_transient_status(status) or error in TRANSIENT_API_ERRORS,
            status=status,
            retry_after=retry_after_seconds(exc.response.headers),
        ) from None
    except SlackRequestError as exc:
        raise DeliveryError(f"Slack request invalid: {exc}", transient=False) from None
    except TimeoutError:
        raise DeliveryError("Slack timed out", transient=True) from None
    except (URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        kind = "timed out" if isinstance(reason, TimeoutError) else f"unreachable: {type(reason).__name__}"
        raise DeliveryError(f"Slack {kind}", transient=True) from None
    raise DeliveryError(NOT_CONFIGURED, transient=False)
