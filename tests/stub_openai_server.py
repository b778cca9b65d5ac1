"""A tiny OpenAI-compatible server for tests: ``POST /v1/chat/completions`` answered from a queue of
scripted replies, every request recorded. It listens on 127.0.0.1 (a random free port), serves at most
``max_requests`` requests and shuts itself down after ``lifetime`` seconds whatever happens.

Script entries (see the helpers below): a tool-call reply, a text reply, an HTTP error status, a delay
before replying (to trip the client's timeout), raw arguments text (e.g. malformed JSON), or a raw body
(e.g. not JSON at all, or an SSE stream nobody asked for). A request with ``"stream": true`` gets the same
reply as server-sent events (text in word-sized pieces, then the tool calls, the finish reason and the
usage), as the OpenAI API streams it.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def tool_calls_reply(*calls: tuple[str, dict | str], content: str | None = None,
                     usage: tuple[int, int] = (100, 20)) -> dict:
    """A 200 reply with tool calls; a str instead of a dict is sent as the raw arguments text."""
    tool_calls = [{"id": f"call_{i}_{name}", "type": "function",
                   "function": {"name": name, "arguments": args if isinstance(args, str) else json.dumps(args)}}
                  for i, (name, args) in enumerate(calls)]
    message = {"role": "assistant", "content": content, "tool_calls": tool_calls}
    return {"status": 200, "body": completion(message, "tool_calls", usage)}


def text_reply(content: str, usage: tuple[int, int] = (100, 20)) -> dict:
    """A 200 reply with text and no tool call."""
    return {"status": 200, "body": completion({"role": "assistant", "content": content}, "stop", usage)}


def error_reply(status: int, message: str = "scripted failure", headers: dict | None = None) -> dict:
    """An HTTP error in the OpenAI error format."""
    return {"status": status, "headers": headers or {},
            "body": {"error": {"message": message, "type": "server_error" if status >= 500 else "invalid_request_error",
                               "code": None}}}


def raw_reply(text: str, status: int = 200, content_type: str = "application/json") -> dict:
    """A reply whose body is ``text`` exactly, whatever it is."""
    return {"status": status, "raw": text, "content_type": content_type}


def delayed(reply: dict, seconds: float) -> dict:
    """``reply`` sent only after ``seconds``."""
    return {**reply, "delay": seconds}


def trickled(reply: dict, seconds_per_chunk: float) -> dict:
    """``reply``, streamed (when the client asks for a stream) one event every ``seconds_per_chunk``."""
    return {**reply, "chunk_delay": seconds_per_chunk}


def completion(message: dict, finish_reason: str, usage: tuple[int, int]) -> dict:
    prompt, completion_tokens = usage
    return {"id": "chatcmpl-stub", "object": "chat.completion", "created": 1700000000, "model": "stub-model",
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion_tokens,
                      "total_tokens": prompt + completion_tokens}}


def stream_events(body: dict) -> bytes:
    """A completion body as the server-sent events of a streamed response."""
    choice = body["choices"][0]
    message = choice["message"]
    base = {"id": body["id"], "object": "chat.completion.chunk", "created": body["created"], "model": body["model"]}

    def chunk(delta: dict, finish: str | None = None) -> dict:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}

    chunks = [chunk({"role": "assistant", "content": ""})]
    chunks += [chunk({"content": piece}) for piece in re.findall(r"\S+\s*|\s+", message.get("content") or "")]
    for i, call in enumerate(message.get("tool_calls") or []):
        chunks.append(chunk({"tool_calls": [{"index": i, **call}]}))
    chunks.append(chunk({}, choice["finish_reason"]))
    chunks.append({**base, "choices": [], "usage": body.get("usage")})
    return b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


class StubOpenAIServer:
    """Serves scripted chat completions; use as a context manager.

    Args:
        script: Replies in order (dicts made by the helpers above).
        max_requests: Requests served before every further one gets a 500 (bounded).
        lifetime: Seconds after which the server stops by itself.

    Attributes:
        requests: The parsed JSON body of every request, in order.
        paths: The path of every request.
        headers: The headers of every request (lower-case names).
        unexpected: Requests that found the script used up (a test should assert this is empty).
    """

    def __init__(self, script: list[dict], max_requests: int = 50, lifetime: float = 60.0) -> None:
        self.script = deque(script)
        self.max_requests = max_requests
        self.lifetime = lifetime
        self.requests: list[dict] = []
        self.paths: list[str] = []
        self.headers: list[dict[str, str]] = []
        self.unexpected: list[dict] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._timer = threading.Timer(lifetime, self.stop)
        self._timer.daemon = True
        self._stopped = False

    @property
    def base_url(self) -> str:
        """The ``/v1`` base URL to give the client."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def remaining(self) -> int:
        """Scripted replies not yet served."""
        return len(self.script)

    def start(self) -> "StubOpenAIServer":
        self._thread.start()
        self._timer.start()
        return self

    def stop(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self._timer.cancel()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "StubOpenAIServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _next(self, body: dict) -> dict:
        with self._lock:
            self.requests.append(body)
            if len(self.requests) > self.max_requests or not self.script:
                self.unexpected.append(body)
                return error_reply(500, "stub script used up")
            return self.script.popleft()

    def _handler_class(self):
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                stub.paths.append(self.path)
                stub.headers.append({k.lower(): v for k, v in self.headers.items()})
                if self.path.rstrip("/") != "/v1/chat/completions":
                    return self._send(error_reply(404, f"no route {self.path}"))
                try:
                    body = json.loads(raw or b"{}")
                except json.JSONDecodeError:
                    return self._send(error_reply(400, "request body is not JSON"))
                reply = stub._next(body)
                if reply.get("delay"):
                    time.sleep(reply["delay"])
                self._send(reply, stream=bool(body.get("stream")) and reply.get("status", 200) == 200)

            def _send(self, reply: dict, stream: bool = False) -> None:
                stream = stream and "raw" not in reply
                if "raw" in reply:
                    data = reply["raw"].encode()
                else:
                    data = stream_events(reply["body"]) if stream else json.dumps(reply["body"]).encode()
                try:
                    self.send_response(reply.get("status", 200))
                    self.send_header("Content-Type", "text/event-stream" if stream
                                     else reply.get("content_type", "application/json"))
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in (reply.get("headers") or {}).items():
                        self.send_header(k, str(v))
                    self.end_headers()
                    if stream and reply.get("chunk_delay"):
                        for event in data.split(b"\n\n")[:-1]:
                            self.wfile.write(event + b"\n\n")
                            self.wfile.flush()
                            time.sleep(reply["chunk_delay"])
                    else:
                        self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

        return Handler
