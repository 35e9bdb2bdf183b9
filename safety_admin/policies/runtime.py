"""The ruleset each process uses right now. The policies issue adds versions, Redis pub/sub and profiles;
callers only ever ask ``active_ruleset(profile)``.
"""

from django.conf import settings

from safety_admin.detectors import Ruleset, default_ruleset


def active_ruleset(profile: str = "") -> Ruleset:
    """The compiled ruleset for ``profile`` (the global default when empty)."""
    return default_ruleset()


def steering_prompt(profile: str = "") -> str:
    """The system prompt the worker prepends to every model call."""
    return settings.SAFETY_STEERING_PROMPT
