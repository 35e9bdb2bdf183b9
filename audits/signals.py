"""Sign-ins, sign-outs and failed sign-ins go into the audit trail (never the password)."""

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from audits.services import audit_event_record
from safety_admin.privacy import pseudonymize

ACTION_SIGNED_IN = "accounts.user.signed_in"
ACTION_SIGNED_OUT = "accounts.user.signed_out"
ACTION_SIGN_IN_FAILED = "accounts.user.sign_in_failed"


def _client(request) -> dict:
    if request is None:
        return {}
    ip = getattr(request, "axes_ip_address", "") or request.META.get("REMOTE_ADDR", "")
    return {"ip": pseudonymize(ip)}


def _user_fields(user) -> dict:
    return {"subject_type": "accounts.user", "subject_id": str(user.pk), "subject_repr": user.get_username()}


@receiver(user_logged_in, dispatch_uid="audits.signed_in")
def record_sign_in(sender, request=None, user=None, **kwargs):
    audit_event_record(action=ACTION_SIGNED_IN, actor=user, **_user_fields(user), data=_client(request))


@receiver(user_logged_out, dispatch_uid="audits.signed_out")
def record_sign_out(sender, request=None, user=None, **kwargs):
    if user is not None:
        audit_event_record(action=ACTION_SIGNED_OUT, actor=user, **_user_fields(user), data=_client(request))


@receiver(user_login_failed, dispatch_uid="audits.sign_in_failed")
def record_sign_in_failed(sender, credentials=None, request=None, **kwargs):
    # The attempted username may be someone's identifier (or a mistyped password): pseudonym + ciphertext only.
    username = str((credentials or {}).get("username", ""))
    audit_event_record(
        action=ACTION_SIGN_IN_FAILED,
        actor_label="anonymous",
        subject_type="accounts.user",
        principal_id=f"username:{username}" if username else "",
        data={**_client(request), "locked_out": bool(getattr(request, "axes_locked_out", False))},
    )
