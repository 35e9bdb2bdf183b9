"""PostgreSQL tells the workers about new outbox rows: NOTIFY safety_outbox, '<id>,<id>…' at commit.

The web process then does no Redis work for notifications at all (issue 8: notifications must not slow the
request path); a worker's OutboxListener turns the ids into RQ jobs. NOTIFY is delivered only if the
transaction commits, which is exactly the on-commit hand-off the web process used to do itself. SQLite
(``make run``) has no NOTIFY: there the web process keeps handing rows over from a background thread.
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION notifications_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('safety_outbox', (SELECT string_agg(id::text, ',') FROM new_rows));
    RETURN NULL;
END $$;
CREATE TRIGGER notifications_outbox_notify AFTER INSERT ON notifications_notification
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION notifications_outbox_notify();
"""
DROP = """
DROP TRIGGER IF EXISTS notifications_outbox_notify ON notifications_notification;
DROP FUNCTION IF EXISTS notifications_outbox_notify();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("notifications", "0002_lighter_outbox_indexes")]

    operations = [migrations.RunPython(forwards, backwards)]
