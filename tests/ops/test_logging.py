"""JSON log lines: fields, redaction of content, daily gzip files, and one trace id from gateway to worker."""

import gzip
import io
import json
import logging
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from safety_admin import context
from safety_admin.inference.models import InferenceRequest
from safety_admin.logging import REDACTED, ContextFilter, DailyGzipFileHandler, JsonFormatter
from tests.conftest import ROOT, process_env, wait_for
from tests.ops.conftest import http

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
PROMPT = "How do the tides of the Bay of Fundy work?"


def capture(logger_name: str = "tests.ops.json") -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    logger = logging.getLogger(logger_name)
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, stream


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_line_has_time_level_event_ids_and_reason_code():
    logger, stream = capture()
    token = context.bind(trace_id=TRACE_ID, request_id="req-1", user="u_0123456789abcdef")
    try:
        logger.warning("request %s", "refused", extra={"event": "gateway.request.refused", "reason_code": "HATE"})
    finally:
        context.reset(token)

    (line,) = lines(stream)
    assert datetime.fromisoformat(line.pop("time")).tzinfo == UTC
    assert line == {
        "level": "warning",
        "logger": "tests.ops.json",
        "event": "gateway.request.refused",
        "trace_id": TRACE_ID,
        "request_id": "req-1",
        "user": "u_0123456789abcdef",
        "reason_code": "HATE",
        "message": "request refused",
    }


def test_content_fields_are_redacted_unless_content_logging_is_on(settings):
    logger, stream = capture()
    extra = {"event": "debug.model", "user_input": PROMPT, "response": "It is the shape of the bay.", "status": "ok"}

    settings.SAFETY_LOG_CONTENT = False
    logger.info("model call", extra=extra)
    settings.SAFETY_LOG_CONTENT = True
    logger.info("model call", extra=extra)

    off, on = lines(stream)
    assert (off["user_input"], off["response"], off["status"]) == (
        REDACTED.format(n=len(PROMPT)),
        REDACTED.format(n=27),
        "ok",
    )
    assert (on["user_input"], on["response"]) == (PROMPT, "It is the shape of the bay.")


def test_exceptions_are_logged_with_their_type_and_traceback():
    logger, stream = capture()
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("failed", extra={"event": "job.failed"})

    (line,) = lines(stream)
    assert (line["event"], line["exc_type"]) == ("job.failed", "ValueError")
    assert line["exc"].splitlines()[-1] == "ValueError: boom"


def test_daily_files_are_gzipped_and_kept_for_thirty_days(tmp_path):
    path = tmp_path / "logs" / "safety.log"
    handler = DailyGzipFileHandler(str(path))
    handler.setFormatter(JsonFormatter())
    for day in range(1, 32):  # 31 older days already on disk
        (tmp_path / "logs" / f"safety.log.2026-10-{day:02d}.gz").write_bytes(gzip.compress(b"old\n"))
    handler.emit(logging.makeLogRecord({"msg": "yesterday", "levelno": 20, "levelname": "INFO", "name": "t"}))

    handler.doRollover()
    handler.close()

    kept = sorted(p.name for p in path.parent.iterdir())
    rotated = [name for name in kept if name.endswith(".gz") and not name.startswith("safety.log.2026-10-")]
    assert len(rotated) == 1
    assert json.loads(gzip.decompress((path.parent / rotated[0]).read_bytes()))["event"] == "yesterday"
    assert len([n for n in kept if n.endswith(".gz")]) == 30
    assert "safety.log.2026-10-01.gz" not in kept
    assert "safety.log.2026-10-02.gz" not in kept
    assert "safety.log" in kept
    assert handler.when == "MIDNIGHT"
    assert handler.utc is True


def test_safety_log_file_setting_writes_json_lines(tmp_path):
    log_file = tmp_path / "app.log"
    code = "import logging; logging.getLogger('ops.check').info('hello', extra={'event': 'ops.hello'})"
    subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, check=True, timeout=120,
                   env=process_env(SAFETY_LOG_FILE=str(log_file)), capture_output=True)  # fmt: skip

    (line,) = [json.loads(x) for x in log_file.read_text().splitlines() if '"ops.hello"' in x]
    assert (line["event"], line["logger"], line["level"]) == ("ops.hello", "ops.check", "info")


def json_lines(text: str) -> list[dict]:
    out = []
    for raw in text.splitlines():
        if raw.startswith("{"):
            try:
                out.append(json.loads(raw))
            except json.JSONDecodeError:
                continue
    return out


@pytest.mark.django_db(transaction=True)
def test_one_trace_id_from_the_gateway_log_to_the_worker_log(api_key, stub_model, start_gunicorn, start_worker):
    env = {"SAFETY_LOG_JSON": "1", "SAFETY_LOG_LEVEL": "INFO"}
    web = start_gunicorn(workers=1, **env)
    worker = start_worker(MODEL_API_URL=stub_model.url, **env)
    key = api_key(name="traced")

    headers = {"X-API-Key": key, "Content-Type": "application/json", "traceparent": TRACEPARENT}
    reply = http(f"{web.url}/safety/infer", method="POST", body=json.dumps({"user_input": PROMPT}).encode(),
                 headers=headers)  # fmt: skip
    request_id = reply.json()["request_id"]
    wait_for(lambda: InferenceRequest.objects.get(pk=request_id).status == "completed", timeout=60,
             message="the worker to complete the request")  # fmt: skip

    def worker_line():
        found = [x for x in json_lines(worker.output()) if x.get("event") == "inference.finished"]
        return found[0] if found else None

    finished = wait_for(worker_line, timeout=20, message="the worker's inference.finished log line")
    # The gateway wrote its line before it sent the 202.
    (queued,) = [x for x in json_lines(web.output()) if x.get("event") == "gateway.request.queued"]
    user = InferenceRequest.objects.get(pk=request_id).principal_pseudonym

    assert reply.headers["X-Trace-Id"] == TRACE_ID
    assert (queued["trace_id"], queued["request_id"], queued["user"]) == (TRACE_ID, request_id, user)
    assert (finished["trace_id"], finished["request_id"], finished["user"]) == (TRACE_ID, request_id, user)
    assert (queued["level"], finished["level"], finished["status"]) == ("info", "info", "completed")
    # Every line gunicorn and the app wrote is JSON (gunicorn's own boot lines included).
    web_lines = [raw for raw in web.output().splitlines() if raw.strip()]
    assert len(json_lines(web.output())) == len(web_lines)
    assert {"gunicorn.error", "safety_admin.gateway.views"} <= {x["logger"] for x in json_lines(web.output())}
    # Neither process logged the prompt or the answer.
    assert "Fundy" not in web.output()
    assert "Fundy" not in worker.output()
