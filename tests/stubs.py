"""Real HTTP servers on loopback that stand in for the model, Slack and PagerDuty.

A stub records every request and answers through a handler function that a test can swap at any
time, so one server can be told to succeed, fail, hang or answer 429 mid-test.
"""

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body or b"null")


@dataclass
class Reply:
    status: int = 200
    body: bytes | str | dict | list = b""
    headers: dict = field(default_factory=dict)
    delay: float = 0.0


class StubServer:
    """``StubServer(handler)``; ``handler(Recorded) -> Reply``. ``.url`` is ``http://127.0.0.1:<port>``."""

    def __init__(self, handler):
        self.handler = handler
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        stub = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                rec = Recorded(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                with stub._lock:
                    stub.requests.append(rec)
                reply = stub.handler(rec)
                if reply.delay:
                    time.sleep(reply.delay)
                payload = reply.body
                if isinstance(payload, (dict, list)):
                    payload = json.dumps(payload).encode()
                elif isinstance(payload, str):
                    payload = payload.encode()
                try:
                    self.send_response(reply.status)
                    headers = {"Content-Type": "application/json", **reply.headers}
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = do_PUT = _serve

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> "StubServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def chat_completion(text: str) -> dict:
    """An OpenAI-compatible chat completion body carrying ``text``."""
    return {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "model": "stub",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
    }


def echo_model(rec: Recorded) -> Reply:
    """A model that answers ``echo: <last user message>``, or a scripted answer when the prompt asks for one."""
    data = rec.json()
    user = [m["content"] for m in data["messages"] if m["role"] == "user"][-1]
    if user.startswith("SAY:"):
        return Reply(body=chat_completion(user[4:]))
    return Reply(body=chat_completion(f"echo: {user}"))
