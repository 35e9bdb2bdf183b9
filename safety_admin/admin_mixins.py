"""Shared admin pieces."""


class ReadOnlyAdminMixin:
    """Browse and search only: records written by services (and audited there) are never edited here."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
