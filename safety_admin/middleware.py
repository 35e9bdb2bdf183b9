"""Project middleware: trace ids for every request and a strict Content-Security-Policy."""

from django.conf import settings

from safety_admin import context


class TraceMiddleware:
    """Binds a trace id (from ``traceparent`` or fresh) for logs, audits and the worker job."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        trace_id = context.trace_id_from_traceparent(request.headers.get("traceparent"))
        request.trace_id = trace_id
        token = context.bind(trace_id=trace_id, request_id="", user="")
        try:
            response = self.get_response(request)
        finally:
            context.reset(token)
        response["X-Trace-Id"] = trace_id
        return response


class ContentSecurityPolicyMiddleware:
    """Sends the CSP from settings on every response (the console has no inline script or style)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.setdefault("Content-Security-Policy", settings.CONTENT_SECURITY_POLICY)
        response.setdefault("X-Content-Type-Options", "nosniff")
        return response
