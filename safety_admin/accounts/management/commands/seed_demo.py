"""Create the demo admin, reviewers and API key for `make run`, and print them."""

import secrets

from django.core.management.base import BaseCommand

from safety_admin.accounts.models import Tier, User
from safety_admin.gateway.models import ApiKey
from safety_admin.gateway.services import api_key_create

DEMO_USERS = (
    ("admin", Tier.PRIVILEGED, True),
    ("reviewer", Tier.VERIFIED, False),
    ("senior", Tier.PRIVILEGED, False),
)


class Command(BaseCommand):
    help = "Create demo accounts (admin, verified and privileged reviewers) and a demo API key; print them."

    def add_arguments(self, parser):
        parser.add_argument("--key-file", default="", help="Where to keep the demo API key between runs")

    def handle(self, *args, key_file, **options):
        lines = []
        for username, tier, staff in DEMO_USERS:
            user = User.objects.filter(username=username).first()
            password = f"{username}-demo"
            if user is None:
                user = User(username=username, tier=tier, is_staff=staff, is_superuser=staff)
                user.set_password(password)
                user.save()
            lines.append(f"  {username:<9} password {password:<15} tier {tier}{' (admin)' if staff else ''}")
        raw = ""
        if key_file:
            try:
                with open(key_file) as fh:
                    raw = fh.read().strip()
            except FileNotFoundError:
                raw = ""
        prefix = raw[3:].partition("_")[0] if raw else ""
        if not raw or not ApiKey.objects.filter(prefix=prefix, revoked_at__isnull=True).exists():
            _key, raw = api_key_create(name=f"demo-{secrets.token_hex(2)}", tier=Tier.VERIFIED,
                                       actor_label="make run")  # fmt: skip
            if key_file:
                with open(key_file, "w") as fh:
                    fh.write(raw + "\n")
        self.stdout.write("Demo accounts (sign in at /accounts/login/):")
        self.stdout.write("\n".join(lines))
        self.stdout.write(f"Demo API key (verified tier): {raw}")
