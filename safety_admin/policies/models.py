"""Blocklists, their entries, policy profiles (the editable draft) and published, immutable policy versions."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from safety_admin.detectors import ACTIONS, DIRECTIONS, MATCH_TYPES, REASON_CODES, SEVERITIES

MAX_PATTERN_LENGTH = 500


def _choices(values) -> list[tuple[str, str]]:
    return [(v, v) for v in values]


class Blocklist(models.Model):
    """A named list of entries. Built-in lists mirror a shipped detector pack: read-only, but can be disabled."""

    name = models.SlugField(max_length=100, unique=True)
    description = models.CharField(max_length=500, blank=True, default="")
    builtin = models.BooleanField(default=False, help_text="Mirrors a shipped detector pack; entries are read-only")
    pack = models.CharField(max_length=100, blank=True, default="", help_text="Shipped pack name (built-in lists)")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by_label = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        ordering = ["-builtin", "name"]

    def __str__(self) -> str:
        return f"{self.name}{' (built-in)' if self.builtin else ''}"


class BlocklistEntry(models.Model):
    """One term or pattern in a list (draft state until a version is published)."""

    # No index of its own: policies_entry_list_pattern (blocklist, pattern) serves every lookup by list, and one
    # index less is less work for each of the 100k rows an import writes.
    blocklist = models.ForeignKey(Blocklist, on_delete=models.CASCADE, related_name="entries", db_index=False)
    pattern = models.CharField(max_length=MAX_PATTERN_LENGTH)
    match_type = models.CharField(max_length=12, choices=_choices(MATCH_TYPES), default="word")
    reason_code = models.CharField(max_length=40, choices=_choices(REASON_CODES))
    severity = models.CharField(max_length=8, choices=_choices(SEVERITIES), default="medium")
    action = models.CharField(max_length=8, choices=_choices(ACTIONS), default="review")
    direction = models.CharField(max_length=8, choices=_choices(DIRECTIONS), default="prompt")
    window = models.PositiveSmallIntegerField(default=8, help_text="Proximity window in words")
    note = models.CharField(max_length=500, blank=True, default="")
    added_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    added_by_label = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["blocklist", "id"]
        indexes = [models.Index(fields=["blocklist", "pattern"], name="policies_entry_list_pattern")]
        verbose_name_plural = "blocklist entries"

    def __str__(self) -> str:
        return f"{self.pattern[:60]} ({self.match_type}, {self.reason_code})"

    @property
    def rule_id(self) -> str:
        return f"bl.{self.blocklist.name}.{self.pk}"


class PolicyProfile(models.Model):
    """Which lists apply and at what thresholds, with overlays per jurisdiction and context (see docs/policies.md).

    The profile named ``default`` applies to clients without a profile (and to unknown profile names).
    """

    name = models.SlugField(max_length=100, unique=True)
    description = models.CharField(max_length=500, blank=True, default="")
    config = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class PolicyVersion(models.Model):
    """An immutable, numbered snapshot of lists, entries and profiles. Exactly one is active."""

    number = models.PositiveIntegerField(unique=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)  # set by the publish: staging names it
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_by_label = models.CharField(max_length=200)
    note = models.CharField(max_length=1000)
    snapshot = models.JSONField()
    diff = models.JSONField(default=dict, help_text="Change log against the version active before publishing")
    entry_count = models.PositiveIntegerField(default=0)
    is_active = models.BooleanField(default=False)
    activated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_active"], condition=models.Q(is_active=True), name="policies_one_active_version"
            )
        ]

    def __str__(self) -> str:
        return f"v{self.number}{' (active)' if self.is_active else ''}"

    @property
    def label(self) -> str:
        return f"v{self.number}"
