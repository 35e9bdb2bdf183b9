"""The benchmark's baseline: a bare view that only parses the JSON and enqueues the same job.

Mounted at /bench/baseline-infer only when SAFETY_BENCH_BASELINE=1 (bench/gateway.py sets it), so
the gateway's cost can be read as a ratio against the cheapest possible view in the same server.
"""

import json
import uuid

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

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
