from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from safety_admin.accounts.models import User


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ("username", "email", "tier", "is_staff", "is_active")
    list_filter = ("tier", "is_staff", "is_superuser", "is_active", "groups")
    fieldsets = (*BaseUserAdmin.fieldsets, ("Trust", {"fields": ("tier",)}))
    add_fieldsets = (*BaseUserAdmin.add_fieldsets, ("Trust", {"fields": ("tier",)}))
