"""Hash chain, privacy fields and signed checkpoints; rows written before this migration are chained in id order."""

import json

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

import audits.models
from audits.chain import GENESIS_HASH, canonical_json, canonical_time, event_hash


def chain_existing(apps, schema_editor):
    AuditEvent = apps.get_model("audits", "AuditEvent")
    prev = GENESIS_HASH
    for seq, event in enumerate(AuditEvent.objects.order_by("id").iterator(), start=1):
        data = event.data if isinstance(event.data, dict) else json.loads(event.data or "{}")
        text = canonical_json(data)
        values = (seq, prev, event.ticket_id, canonical_time(event.created_at), event.actor_id, event.actor_label,
                  event.action, event.subject_type, event.subject_id, event.subject_repr, event.request_id,
                  event.trace_id, "", text)  # fmt: skip
        digest = event_hash(values)
        AuditEvent.objects.filter(pk=event.pk).update(seq=seq, data=text, prev_hash=prev, hash=digest)
        prev = digest


class Migration(migrations.Migration):

    dependencies = [
        ("audits", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="auditevent",
            options={"default_permissions": ("view",), "ordering": ["-seq"]},
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="data",
            field=audits.models.CanonicalJSONField(blank=True, default=dict, editable=False),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="actor",
            field=models.ForeignKey(
                blank=True, db_constraint=False, editable=False, null=True,
                on_delete=django.db.models.deletion.DO_NOTHING, related_name="+", to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddField(
            model_name="auditevent",
            name="principal_pseudonym",
            field=models.CharField(blank=True, db_index=True, default="", editable=False, max_length=40),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="auditevent",
            name="principal_ciphertext",
            field=models.TextField(blank=True, default="", editable=False),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="auditevent",
            name="prev_hash",
            field=models.CharField(default="", editable=False, max_length=64),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="auditevent",
            name="hash",
            field=models.CharField(default="", editable=False, max_length=64),
            preserve_default=False,
        ),
        migrations.RunPython(chain_existing, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="auditevent",
            name="seq",
            field=models.BigIntegerField(editable=False, unique=True),
        ),
        migrations.AddIndex(
            model_name="auditevent",
            index=models.Index(fields=["actor_label", "created_at"], name="audits_actor_created"),
        ),
        migrations.CreateModel(
            name="AuditCheckpoint",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("seq", models.BigIntegerField(editable=False, unique=True)),
                ("head_hash", models.CharField(editable=False, max_length=64)),
                ("created_at", models.DateTimeField(editable=False)),
                ("public_key", models.CharField(editable=False, help_text="Ed25519 public key, hex", max_length=64)),
                ("signature", models.CharField(editable=False, help_text="Ed25519 signature, hex", max_length=128)),
            ],
            options={"ordering": ["-seq"], "default_permissions": ("view",)},
        ),
    ]
