from django.apps import AppConfig


class PoliciesConfig(AppConfig):
    name = "safety_admin.policies"
    label = "policies"
    verbose_name = "Policies"
