from django.apps import AppConfig


class InferenceConfig(AppConfig):
    name = "safety_admin.inference"
    label = "inference"
    verbose_name = "Inference"
