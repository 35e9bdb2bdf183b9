"""Template context shared by every screen."""

from django.conf import settings


def product(request):
    return {
        "demo_model": not settings.MODEL_API_URL,
        "safety_env": settings.SAFETY_ENV,
    }
