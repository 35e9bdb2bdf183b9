from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "safety_admin.accounts"
    label = "accounts"
    verbose_name = "Accounts"
