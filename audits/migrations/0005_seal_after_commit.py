"""Chain events after they commit: seq/prev_hash/hash start empty and are written once by the sealer.

The row trigger now allows exactly one UPDATE per event: from no ``seq`` to a ``seq``, touching nothing but
``seq``, ``prev_hash`` and ``hash``. Everything else stays refused, as does TRUNCATE (see 0003).
"""

from django.db import migrations, models

PG_FUNCTION = """
CREATE OR REPLACE FUNCTION audits_event_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.seq IS NULL AND NEW.seq IS NOT NULL
       AND (to_jsonb(OLD) - 'seq' - 'prev_hash' - 'hash') = (to_jsonb(NEW) - 'seq' - 'prev_hash' - 'hash') THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit trail is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;
"""
SQLITE_COLUMNS = ("id", "ticket_id", "created_at", "actor_id", "actor_label", "action", "subject_type", "subject_id",
                  "subject_repr", "request_id", "trace_id", "principal_pseudonym", "principal_ciphertext", "data")
SQLITE_SEAL_ONLY = " AND ".join(f"NEW.{c} IS OLD.{c}" for c in SQLITE_COLUMNS)


def install(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_FUNCTION, params=None)
        schema_editor.execute("DROP TRIGGER IF EXISTS audits_auditevent_no_change ON audits_auditevent")
        schema_editor.execute(
            "CREATE TRIGGER audits_auditevent_no_change BEFORE UPDATE OR DELETE ON audits_auditevent "
            "FOR EACH ROW EXECUTE FUNCTION audits_event_append_only()"
        )
    elif vendor == "sqlite":
        # Altering a column rebuilds the table on SQLite, which drops its triggers: create both again.
        schema_editor.execute("DROP TRIGGER IF EXISTS audits_auditevent_no_update")
        schema_editor.execute("DROP TRIGGER IF EXISTS audits_auditevent_no_delete")
        schema_editor.execute(
            "CREATE TRIGGER audits_auditevent_no_delete BEFORE DELETE ON audits_auditevent "
            "BEGIN SELECT RAISE(ABORT, 'audit trail is append-only: DELETE on audits_auditevent refused'); END"
        )
        schema_editor.execute(
            "CREATE TRIGGER audits_auditevent_no_update BEFORE UPDATE ON audits_auditevent "
            f"WHEN NOT (OLD.seq IS NULL AND NEW.seq IS NOT NULL AND {SQLITE_SEAL_ONLY}) "
            "BEGIN SELECT RAISE(ABORT, 'audit trail is append-only: UPDATE on audits_auditevent refused'); END"
        )


def uninstall(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute("DROP TRIGGER IF EXISTS audits_auditevent_no_change ON audits_auditevent")
        schema_editor.execute(
            "CREATE TRIGGER audits_auditevent_no_change BEFORE UPDATE OR DELETE ON audits_auditevent "
            "FOR EACH ROW EXECUTE FUNCTION audits_append_only()"
        )
        schema_editor.execute("DROP FUNCTION IF EXISTS audits_event_append_only()")
    elif vendor == "sqlite":
        schema_editor.execute("DROP TRIGGER IF EXISTS audits_auditevent_no_update")
        schema_editor.execute(
            "CREATE TRIGGER audits_auditevent_no_update BEFORE UPDATE ON audits_auditevent "
            "BEGIN SELECT RAISE(ABORT, 'audit trail is append-only: UPDATE on audits_auditevent refused'); END"
        )


class Migration(migrations.Migration):

    dependencies = [("audits", "0004_auditors_group")]

    operations = [
        migrations.AlterModelOptions(
            name="auditevent",
            options={"default_permissions": ("view",), "ordering": ["-id"]},
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="seq",
            field=models.BigIntegerField(blank=True, editable=False, null=True, unique=True),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="prev_hash",
            field=models.CharField(blank=True, editable=False, max_length=64),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="hash",
            field=models.CharField(blank=True, editable=False, max_length=64),
        ),
        migrations.AddIndex(
            model_name="auditevent",
            index=models.Index(condition=models.Q(("seq__isnull", True)), fields=["id"], name="audits_pending_seal"),
        ),
        migrations.RunPython(install, uninstall),
    ]
