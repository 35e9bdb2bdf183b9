"""`manage.py purge_content`: blank prompts and answers past the retention period (open escalations excepted)."""

from django.conf import settings
from django.core.management.base import BaseCommand

from audits.services import content_purge


class Command(BaseCommand):
    help = "Blank user_input, system_prompt and response of requests older than CONTENT_RETENTION_DAYS."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=None, help="retention in days (default: the setting)")
        parser.add_argument("--batch-size", type=int, default=500)

    def handle(self, *args, days: int | None, batch_size: int, **options):
        purged = content_purge(older_than_days=days, batch_size=batch_size)
        shown = settings.CONTENT_RETENTION_DAYS if days is None else days
        self.stdout.write(f"purged content of {purged} requests older than {shown} days")
