from django.apps import AppConfig


class GatewayConfig(AppConfig):
    name = "safety_admin.gateway"
    label = "gateway"
    verbose_name = "Gateway"
