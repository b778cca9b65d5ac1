"""A recording proxy for the real-model check: forwards ``POST /v1/chat/completions`` on 127.0.0.1 to a
local OpenAI-compatible server and appends every exchange to a JSONL file, so that the model's real
responses can become test fixtures (see ``record_fixtures.py``).

Each line: ``{"time", "latency_s", "status", "request": {model, n_messages, tool_names, tool_choice,
max_tokens, schema_chars, last_message}, "response": <the server's JSON body>}``. Requests are summarised
(the prompts are rebuilt by the test from the same code), responses are kept whole.

Usage: python record_proxy.py --listen 8090 --upstream http://127.0.0.1:8089 --log exchanges.jsonl
Loopback only; it stops by itself after ``--lifetime`` seconds.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def summarise(body: dict) -> dict:
    """What a fixture needs to know about a request."""
    tools = body.get("tools") or []
    last = (body.get("messages") or [{}])[-1]
    content = last.get("content")
    return {"model": body.get("model"), "n_messages": len(body.get("messages") or []),
            "tool_names": [t.get("function", {}).get("name") for t in tools],
            "tool_choice": body.get("tool_choice"),
            "max_tokens": body.get("max_tokens", body.get("max_completion_tokens")),
            "schema_chars": len(json.dumps(tools, ensure_ascii=False)),
            "last_message": {"role": last.get("role"), "content": content[:500] if isinstance(content, str) else None}}


def make_handler(upstream: str, log_path: str, timeout: float, lock: threading.Lock):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            started = time.perf_counter()
            request = urllib.request.Request(upstream.rstrip("/") + self.path, data=raw, method="POST",
                                             headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=timeout) as resp:
                    status, data = resp.status, resp.read()
            except urllib.error.HTTPError as err:
                status, data = err.code, err.read()
            except OSError as err:
                status, data = 502, json.dumps({"error": {"message": f"proxy: {err}"}}).encode()
            latency = time.perf_counter() - started
            try:
                body = json.loads(raw or b"{}")
                answer = json.loads(data or b"{}")
            except json.JSONDecodeError:
                body, answer = {}, {"raw": data.decode("utf-8", "replace")[:2000]}
            record = {"time": datetime.now(timezone.utc).isoformat(timespec="microseconds"),
                      "latency_s": round(latency, 3), "status": status, "path": self.path,
                      "request": summarise(body), "response": answer}
            with lock, open(log_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass

    return Handler


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--listen", type=int, default=8090)
    p.add_argument("--upstream", default="http://127.0.0.1:8089")
    p.add_argument("--log", required=True)
    p.add_argument("--timeout", type=float, default=900.0)
    p.add_argument("--lifetime", type=float, default=4 * 3600.0)
    args = p.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.listen), make_handler(args.upstream, args.log, args.timeout,
                                                                           threading.Lock()))
    timer = threading.Timer(args.lifetime, server.shutdown)
    timer.daemon = True
    timer.start()
    server.serve_forever(poll_interval=0.5)


if __name__ == "__main__":
    main()
