"""Pseudonymous identifiers: what logs, metrics and screens show instead of a principal's real id."""

import hashlib
import hmac

from django.conf import settings


def pseudonymize(identifier: str) -> str:
    """A stable keyed HMAC of ``identifier`` (``u_`` + 16 hex chars); the same id always maps the same way."""
    if not identifier:
        return ""
    digest = hmac.new(settings.PSEUDONYM_KEY.encode(), identifier.encode(), hashlib.sha256).hexdigest()
    return f"u_{digest[:16]}"
