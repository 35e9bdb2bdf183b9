"""`manage.py audit_checkpoint`: sign the chain head now (run it from cron so quiet periods are sealed too)."""

from django.core.management.base import BaseCommand

from audits.services import audit_checkpoint_create


class Command(BaseCommand):
    help = "Create a signed checkpoint over the current audit chain head, if it is not covered yet."

    def handle(self, *args, **options):
        checkpoint = audit_checkpoint_create()
        if checkpoint is None:
            self.stdout.write("chain head already covered by a checkpoint")
        else:
            self.stdout.write(f"checkpoint at #{checkpoint.seq} ({checkpoint.head_hash})")
