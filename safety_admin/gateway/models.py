"""API principals: hashed API keys and suspensions."""

from django.db import models


class ApiKey(models.Model):
    """An API key. Only a hash is stored; the key itself is shown once at creation."""

    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True, help_text="Visible part of the key, for recognising it")
    key_hash = models.CharField(max_length=64, unique=True)
    tier = models.CharField(max_length=16)
    profile = models.CharField(max_length=100, blank=True, default="", help_text="Policy profile for this client")
    created_at = models.DateTimeField(auto_now_add=True)
    created_by_label = models.CharField(max_length=200, blank=True, default="")
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…, {self.tier})"

    @property
    def principal_id(self) -> str:
        return f"apikey:{self.prefix}"


class Suspension(models.Model):
    """A principal barred from /safety/infer until ``until`` (or until lifted)."""

    principal_id = models.CharField(max_length=200, db_index=True)
    principal_pseudonym = models.CharField(max_length=40, db_index=True)
    reason = models.CharField(max_length=500)
    until = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    created_by_label = models.CharField(max_length=200)
    lifted_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.principal_pseudonym} until {self.until:%Y-%m-%d %H:%M}"
