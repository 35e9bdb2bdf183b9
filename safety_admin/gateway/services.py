"""Writes for API principals: API keys and suspensions."""

import secrets
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from audits.services import audit_event_record
from safety_admin.accounts.models import Tier
from safety_admin.gateway.auth import KEY_PREFIX, forget_cached_key, hash_key
from safety_admin.gateway.models import ApiKey, Suspension
from safety_admin.privacy import pseudonymize

BAD_TIER = "Tier must be one of: user, verified, privileged."


@transaction.atomic
def api_key_create(*, name: str, tier: str, profile: str = "", actor=None, actor_label: str = "") -> tuple[ApiKey, str]:
    """Create an API key and return it with the raw key (shown once, never stored).

    Side effects: ApiKey row (hash only), audit event ``gateway.apikey.created``.
    """
    if tier not in Tier.values:
        raise ValidationError(BAD_TIER)
    prefix = secrets.token_hex(4)
    raw = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey(name=name.strip(), prefix=prefix, key_hash=hash_key(raw), tier=tier, profile=profile,
                 created_by_label=actor_label or getattr(actor, "username", "") or "system")  # fmt: skip
    key.full_clean()
    key.save()
    audit_event_record(
        action="gateway.apikey.created",
        actor=actor,
        actor_label=key.created_by_label,
        subject_type="gateway.apikey",
        subject_id=str(key.pk),
        subject_repr=str(key),
        data={"name": key.name, "prefix": prefix, "tier": tier, "profile": profile},
    )
    return key, raw


@transaction.atomic
def api_key_revoke(*, key: ApiKey, actor=None, actor_label: str = "") -> ApiKey:
    """Revoke a key at once. Side effects: revoked_at, audit event ``gateway.apikey.revoked``."""
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        transaction.on_commit(lambda: forget_cached_key(key.prefix))
        audit_event_record(
            action="gateway.apikey.revoked",
            actor=actor,
            actor_label=actor_label or getattr(actor, "username", "") or "system",
            subject_type="gateway.apikey",
            subject_id=str(key.pk),
            subject_repr=str(key),
            data={"prefix": key.prefix},
        )
    return key


@transaction.atomic
def suspension_create(
    *, principal_id: str, until: datetime, reason: str, actor=None, actor_label: str = "", request_id: str = ""
) -> Suspension:
    """Bar a principal from /safety/infer until ``until``. Side effects: Suspension row, audit event."""
    if until <= timezone.now():
        raise ValidationError("The suspension must end in the future.")
    if not reason.strip():
        raise ValidationError("A reason is required to suspend.")
    label = actor_label or getattr(actor, "username", "") or "system"
    suspension = Suspension(principal_id=principal_id, principal_pseudonym=pseudonymize(principal_id),
                            reason=reason.strip()[:500], until=until, created_by_label=label)  # fmt: skip
    suspension.full_clean()
    suspension.save()
    from safety_admin.gateway.selectors import forget_cached_suspension

    transaction.on_commit(lambda: forget_cached_suspension(principal_id))
    audit_event_record(
        action="gateway.suspension.created",
        actor=actor,
        actor_label=label,
        subject_type="gateway.suspension",
        subject_id=str(suspension.pk),
        subject_repr=str(suspension),
        request_id=request_id,
        data={"principal": suspension.principal_pseudonym, "until": until.isoformat(), "reason": suspension.reason},
    )
    return suspension
