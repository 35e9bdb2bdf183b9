"""People who sign in: reviewers, admins and auditors."""

from django.contrib.auth.models import AbstractUser
from django.db import models


class Tier(models.TextChoices):
    """Trust tiers, lowest first (DESIGN.md §3)."""

    USER = "user", "User"
    VERIFIED = "verified", "Verified"
    PRIVILEGED = "privileged", "Privileged"


TIER_RANK = {Tier.USER: 0, Tier.VERIFIED: 1, Tier.PRIVILEGED: 2}

# Highest severity each tier may decide (DESIGN.md §3).
SEVERITY_RANK = {"low": 0, "medium": 1, "high": 2, "critical": 3}
TIER_MAX_SEVERITY = {Tier.USER: -1, Tier.VERIFIED: 1, Tier.PRIVILEGED: 3}


def tier_allows_severity(tier: str, severity: str) -> bool:
    """Whether a reviewer of ``tier`` may see and decide an escalation of ``severity``."""
    return SEVERITY_RANK.get(severity, 99) <= TIER_MAX_SEVERITY.get(tier, -1)


def tier_at_least(tier: str, minimum: str) -> bool:
    return TIER_RANK.get(tier, -1) >= TIER_RANK[minimum]


class User(AbstractUser):
    """A person with a trust tier; the tier decides which escalations they may review."""

    tier = models.CharField(max_length=16, choices=Tier.choices, default=Tier.USER)

    def __str__(self) -> str:
        return self.username
