"""Error pages: JSON in the contract's shape under /safety/, plain pages elsewhere."""

from django.http import JsonResponse
from django.shortcuts import render

from safety_admin.gateway import errors


def _is_api(request) -> bool:
    return request.path.startswith("/safety/")


def not_found(request, exception=None):
    if _is_api(request):
        return errors.error_response(errors.NOT_FOUND, "No such endpoint. See /safety/openapi.json.")
    return render(request, "404.html", status=404)


def server_error(request):
    if _is_api(request):
        return JsonResponse({"error": errors.INTERNAL_ERROR, "detail": errors.MSG_INTERNAL}, status=500)
    return render(request, "500.html", status=500)
