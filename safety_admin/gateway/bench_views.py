"""The benchmark's baselines, mounted only when SAFETY_BENCH_BASELINE=1 (bench/gateway.py sets it).

``/bench/baseline-infer``: a bare view that only parses the JSON and enqueues the same job, so the gateway's
cost can be read as a ratio against the cheapest possible view in the same server.

``/bench/floor-infer``: the least a gateway that records a request before the model sees it must add to that:
one rate-limit call and one durable INSERT of a bare row (no authentication, pre-check or audit event) into the
table ``bench_floor``, which the benchmark creates. It shows how much of the gateway's ratio is the write itself.
"""

import json
import uuid

from django.db import connection
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

from safety_admin.gateway.ratelimit import rate_limit_take
from safety_admin.inference.services import inference_enqueue
from safety_admin.redis_conn import fast_redis


@csrf_exempt
def baseline_infer(request):
    data = json.loads(request.body)
    request_id = uuid.uuid4()
    inference_enqueue(request_id, trace_id="", connection=fast_redis())
    return JsonResponse(
        {"request_id": str(request_id), "status": "queued", "chars": len(data["user_input"])}, status=202
    )


@csrf_exempt
def floor_infer(request):
    data = json.loads(request.body)
    if not rate_limit_take("bench-floor", "privileged").allowed:
        return JsonResponse({"error": "rate limited"}, status=429)
    request_id = uuid.uuid4()
    with connection.cursor() as cursor:  # autocommit: one statement, committed durably
        cursor.execute("INSERT INTO bench_floor (id, user_input) VALUES (%s, %s)", [request_id, data["user_input"]])
    inference_enqueue(request_id, trace_id="", connection=fast_redis())
    return JsonResponse({"request_id": str(request_id), "status": "queued"}, status=202)
