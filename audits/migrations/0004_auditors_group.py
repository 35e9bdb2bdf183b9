"""The "Auditors" group: view-only rights on audit events and checkpoints (nobody has add/change/delete)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GROUP = "Auditors"
PERMISSIONS = ("view_auditevent", "view_auditcheckpoint")


def create_group(apps, schema_editor):
    # Permissions are normally created after all migrations; create audits' now so the group can hold them.
    app_config = apps.get_app_config("audits")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name=GROUP)
    group.permissions.set(Permission.objects.filter(content_type__app_label="audits", codename__in=PERMISSIONS))


def delete_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=GROUP).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("audits", "0003_append_only_triggers"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_group, delete_group)]
