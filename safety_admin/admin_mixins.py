"""Shared admin pieces."""


class ReadOnlyAdminMixin:
    """Browse and search only: records written by services (and audited there) are never edited here."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def superuser_required(view):
    """Staff screens that change state (RQ queues and jobs): superusers only; auditors are staff but read-only."""
    import functools

    from django.contrib.admin.views.decorators import staff_member_required
    from django.core.exceptions import PermissionDenied

    @staff_member_required
    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        if not request.user.is_superuser:
            raise PermissionDenied("Only administrators may manage the job queues.")
        return view(request, *args, **kwargs)

    return wrapped
