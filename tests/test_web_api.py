"""The web server's JSON API through httpx (Starlette's TestClient), with real sandboxed workers and real files:
upload -> profile -> tool call -> question -> findings -> report; every kind of bad upload; the worker cap;
the token gate; hostile filenames and paths."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
from starlette.testclient import TestClient  # noqa: E402

from serendip.agent.web.app import create_app, gate_for  # noqa: E402
from serendip.agent.web.security import COOKIE_NAME  # noqa: E402
from serendip.agent.web.sessions import WebSettings  # noqa: E402
from serendip.agent.web.uploads import display_name, stored_name  # noqa: E402
from serendip.tools.synthetic import write_example_table  # noqa: E402

pytestmark = pytest.mark.slow
BASE = "http://127.0.0.1:8765"
HOSTILE = "<img src=x onerror=alert(1)>"


def make_client(tmp: Path, token: str | None = None, host: str = "127.0.0.1", **settings) -> TestClient:
    options = {"max_workers": 2, "memory_limit_mb": 4096, "tool_time_limit": 300.0, **settings}
    app = create_app(WebSettings(data_dir=tmp / "data", **options), gate_for(host, token))
    return TestClient(app, base_url=BASE)


def files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """One server with the demo table uploaded (the upload's response kept)."""
    tmp = tmp_path_factory.mktemp("web")
    table = write_example_table(tmp / "demo.csv", n_rows=300)
    before = hashlib.sha256(table.read_bytes()).hexdigest()
    with make_client(tmp) as client:
        with open(table, "rb") as fh:
            response = client.post("/api/tables", files={"file": ("demo.csv", fh, "text/csv")})
        assert response.status_code == 201, response.text
        yield {"client": client, "upload": response.json(), "table": table, "sha256": before, "tmp": tmp}


def test_upload_returns_the_profile_and_keeps_the_file_untouched(demo):
    body, client = demo["upload"], demo["client"]
    assert body["name"] == "demo.csv" and body["rows"] == 300 and body["columns"] == 8
    profile = body["profile"]
    roles = {c["name"]: c["role"] for c in profile["columns"]}
    assert roles["galaxy"] == "categorical" and roles["stellar_mass"] == "numeric"
    dust = next(c for c in profile["columns"] if c["name"] == "dust_av")
    assert dust["n_sentinel"] > 0 and -99 in dust["sentinel_values"] and dust["missing"] >= dust["n_sentinel"]
    assert len(profile["preview"]["rows"]) == 20 and profile["preview"]["columns"][0] == "region_id"
    stored = next(iter((demo["tmp"] / "data" / "tables" / body["id"] / "input").iterdir()))
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == demo["sha256"] == body["sha256"]
    assert not os.access(stored, os.W_OK) or os.geteuid() == 0  # read-only (root ignores the mode)
    assert stored.stat().st_mode & 0o222 == 0
    assert hashlib.sha256(demo["table"].read_bytes()).hexdigest() == demo["sha256"]
    listed = client.get("/api/tables").json()["tables"]
    assert [t["id"] for t in listed] == [body["id"]] and listed[0]["state"] == "running"
    assert client.get(f"/api/tables/{body['id']}").json()["profile"] == profile


def test_tool_call_question_findings_and_report(demo):
    client, tid = demo["client"], demo["upload"]["id"]
    r = client.post(f"/api/tables/{tid}/tools/correlate", json={"columns": ["stellar_mass", "sfr", "gas_mass"]})
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["result_id"].startswith("R") and result["key_numbers"]["significant_pairs"] >= 1
    assert all(u.startswith(f"/api/tables/{tid}/figures/") for u in result["figures"])
    figure = client.get(result["figures"][0])
    assert figure.status_code == 200 and figure.content[:8] == b"\x89PNG\r\n\x1a\n"

    bad = client.post(f"/api/tables/{tid}/tools/correlate", json={"columns": ["no_such_column"]})
    assert bad.status_code == 400 and "no_such_column" in bad.json()["error"]

    r = client.post(f"/api/tables/{tid}/ask", json={"question": "does sfr depend on stellar mass?"})
    answer = r.json()
    assert r.status_code == 200 and answer["answered"] and answer["source"] == "offline"
    assert answer["evidence"] and answer["evidence"][0] in answer["answer"]
    assert answer["findings"] and any(f["kind"] == "trend" for f in answer["findings"])

    hint = client.post(f"/api/tables/{tid}/ask", json={"question": "write me a poem"}).json()
    assert not hint["answered"] and hint["source"] == "hint" and "--model" in hint["answer"]

    refused = client.post(f"/api/tables/{tid}/ask", json={"question": "/load /etc/passwd"}).json()
    assert not refused["answered"] and "not available" in refused["notices"][0]["text"]

    findings = client.get(f"/api/tables/{tid}/findings").json()
    assert findings["session"] and findings["session"][0]["stats"]["q_value"] is not None

    r = client.post(f"/api/tables/{tid}/report")
    assert r.status_code == 200 and r.json()["n_findings"] >= 1
    report = client.get(r.json()["report_url"])
    assert report.status_code == 200 and "Serendip report" in report.text
    assert "sandbox" in report.headers["content-security-policy"]
    data = client.get(f"/tables/{tid}/runs/session/findings.json").json()
    assert data["schema"] == "serendip.findings/1"


def test_chat_stream_sends_tool_events_then_end(demo):
    client, tid = demo["client"], demo["upload"]["id"]
    kinds, events = [], []
    with client.stream("POST", f"/api/tables/{tid}/ask/stream", json={"question": "/outliers"}) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("event:"):
                kinds.append(line.split(":", 1)[1].strip())
            elif line.startswith("data:"):
                events.append(json.loads(line[5:]))
    assert kinds[0] == "tool_started" and kinds[-1] == "end" and "tool_finished" in kinds
    finished = next(e for e in events if e["kind"] == "tool_finished")
    assert finished["tool"] == "outliers" and finished["ok"] and "n_flagged" in finished["key_numbers"]
    assert "findings" in events[-1]  # the findings so far (none may have passed yet)


def test_paths_outside_the_run_folder_are_not_served(demo):
    client, tid = demo["client"], demo["upload"]["id"]
    for url in (f"/tables/{tid}/runs/session/../../meta.json", f"/tables/{tid}/runs/session/%2e%2e/%2e%2e/meta.json",
                f"/tables/{tid}/runs/session/figures/..%2f..%2fmeta.json", f"/tables/{tid}/runs/..%2f..%2f/report.html",
                f"/tables/{tid}/runs/session/chat.json", f"/tables/{tid}/runs/session/transcript.jsonl",
                f"/api/tables/{tid}/figures/..%2f..%2fmeta.json", "/api/tables/..%2f..%2fetc/findings",
                "/tables/../../etc/passwd/runs/session/report.html"):
        r = client.get(url)
        assert r.status_code == 404, (url, r.status_code)
        assert "sha256" not in r.text


def test_bad_uploads_get_the_loader_message_and_leave_nothing(tmp_path):
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    garbage = os.urandom(4096)
    with make_client(tmp_path, max_upload_bytes=20_000) as client:
        def upload(name, content, **kw):
            return client.post("/api/tables", files={"file": (name, content, "application/octet-stream")}, **kw)

        too_big = upload("big.csv", b"a,b\n" + b"1,2\n" * 10_000)
        assert too_big.status_code == 413 and "upload limit of 19.5 KB" in too_big.json()["error"]
        empty = upload("empty.csv", b"")
        assert empty.status_code == 400 and empty.json()["error"] == "Cannot load 'empty.csv': the file is empty"
        unknown = upload("picture.png", png)
        assert unknown.status_code == 400 and unknown.json()["error"].startswith("Cannot load 'picture.png':")
        noise = upload("noise.csv", garbage)
        assert noise.status_code == 400 and noise.json()["error"].startswith("Cannot load 'noise.csv':")
        header_only = upload("header.csv", b"a,b,c\n")
        assert header_only.status_code == 400 and "no data rows" in header_only.json()["error"]
        for response in (unknown, noise, header_only):
            message = response.json()["error"]
            assert "\n" not in message and "Traceback" not in message and str(tmp_path) not in message
        not_multipart = client.post("/api/tables", content=b"a,b\n1,2\n", headers={"content-type": "text/csv"})
        assert not_multipart.status_code == 415 and "multipart" in not_multipart.json()["error"]
        no_file = client.post("/api/tables", files={"other": ("x.csv", b"a\n1\n")})
        assert no_file.status_code == 400 and "'file'" in no_file.json()["error"]
        assert client.get("/api/tables").json()["tables"] == []
        assert files_under(tmp_path / "data" / "tables") == []
        assert client.app.state.sessions.slots.used == 0


def test_streaming_limit_stops_reading(tmp_path):
    """The reader stops at the limit: it never pulls the rest of an oversized body."""
    import asyncio

    from serendip.agent.web.uploads import UploadError, receive_upload

    pulled = []

    async def body():
        yield b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.csv\"\r\n\r\n"
        for i in range(1000):
            pulled.append(i)
            yield b"x" * 1024

    folder = tmp_path / "up"
    folder.mkdir()
    headers = {"content-type": "multipart/form-data; boundary=XyZ"}
    with pytest.raises(UploadError) as err:
        asyncio.run(receive_upload(headers, body(), folder, limit=10 * 1024))
    assert err.value.status == 413 and len(pulled) <= 12
    assert sum(p.stat().st_size for p in folder.iterdir()) <= 10 * 1024
    with pytest.raises(UploadError) as err:  # a declared length over the limit is refused before reading
        asyncio.run(receive_upload({**headers, "content-length": str(10 ** 9)}, body(), folder, limit=10 * 1024))
    assert err.value.status == 413


def test_hostile_filenames_never_become_paths(tmp_path):
    assert display_name("../../x.csv") == "x.csv" and stored_name("x.csv") == "x.csv"
    assert display_name("/etc/passwd") == "passwd" and stored_name("passwd") == "passwd"
    assert display_name("..\\..\\win.csv") == "win.csv"
    assert display_name("a\x00b\r\n.csv") == "ab.csv"
    assert display_name("..") == "table" and display_name("") == "table"
    assert stored_name(HOSTILE + ".csv") == "img_src_x_onerror_alert_1.csv"
    assert stored_name(".bashrc") == "bashrc" and stored_name("x.csv.gz") == "x.csv.gz"
    assert stored_name("a" * 500 + ".fits") == "a" * 60 + ".fits"

    csv = f"x,y,{HOSTILE}\n" + "".join(f"{i},{2 * i + 1},{i % 3}\n" for i in range(60))
    with make_client(tmp_path) as client:
        # Built by hand: clients percent-encode a NUL in a filename, a hostile one need not.
        raw_name = ("../../" + HOSTILE + "\x00.csv").encode()
        body = (b"--B0undary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"" + raw_name + b"\"\r\n"
                b"Content-Type: text/csv\r\n\r\n" + csv.encode() + b"\r\n--B0undary--\r\n")
        r = client.post("/api/tables", content=body, headers={"content-type": "multipart/form-data; boundary=B0undary"})
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["name"] == HOSTILE + ".csv"
        assert [c["name"] for c in body["profile"]["columns"]][-1] == HOSTILE
        inside = files_under(tmp_path / "data")
        assert all(p.resolve().is_relative_to((tmp_path / "data").resolve()) for p in inside)
        assert not any(p.name.startswith("<") for p in tmp_path.rglob("*"))
        page = client.get(f"/tables/{body['id']}").text
        index = client.get("/").text
        for html in (page, index):
            assert HOSTILE not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
        assert client.delete(f"/api/tables/{body['id']}").json() == {"deleted": body["id"]}
        assert client.get(f"/api/tables/{body['id']}").status_code == 404
        assert files_under(tmp_path / "data" / "tables") == []
        assert client.app.state.sessions.slots.used == 0


def test_worker_cap_answers_503_with_retry_after(tmp_path):
    csv = "a,b\n" + "".join(f"{i},{i * i}\n" for i in range(50))
    with make_client(tmp_path, max_workers=1, evict_after_s=3600) as client:
        first = client.post("/api/tables", files={"file": ("a.csv", csv.encode(), "text/csv")})
        assert first.status_code == 201
        second = client.post("/api/tables", files={"file": ("b.csv", csv.encode(), "text/csv")})
        assert second.status_code == 503 and int(second.headers["retry-after"]) > 0
        assert "busy" in second.json()["error"]
        run = client.post(f"/api/tables/{first.json()['id']}/explore", json={"goal": ""})
        assert run.status_code == 503 and "retry-after" in run.headers
        # The session itself still answers (it holds the slot), and nothing was lost.
        ok = client.post(f"/api/tables/{first.json()['id']}/ask", json={"question": "/describe"})
        assert ok.status_code == 200 and ok.json()["answered"]
        assert [t["id"] for t in client.get("/api/tables").json()["tables"]] == [first.json()["id"]]


def test_idle_session_is_stopped_and_resumed_with_its_results(tmp_path):
    csv = "a,b,c\n" + "".join(f"{i},{2 * i + (i % 7)},{i % 4}\n" for i in range(80))
    with make_client(tmp_path, idle_timeout_s=3600) as client:
        tid = client.post("/api/tables", files={"file": ("t.csv", csv.encode(), "text/csv")}).json()["id"]
        first = client.post(f"/api/tables/{tid}/ask", json={"question": "does b depend on a?"}).json()
        assert first["answered"] and first["evidence"][0] == "R1"
        n_results = int(first["evidence"][-1][1:])
        sessions = client.app.state.sessions
        sessions.settings.idle_timeout_s = 0.0
        assert sessions.reap_idle() == 1 and sessions.slots.used == 0
        assert client.get("/api/tables").json()["tables"][0]["state"] == "stopped"
        assert client.get(f"/api/tables/{tid}/findings").json()["session"] == first["findings"]
        sessions.settings.idle_timeout_s = 3600
        again = client.post(f"/api/tables/{tid}/tools/describe", json={}).json()
        assert again["result_id"] == f"R{n_results + 1}"  # the resumed session continues the ids
        assert client.get("/api/tables").json()["tables"][0]["state"] == "running"


def test_exploration_runs_in_the_background_with_progress_events(tmp_path):
    table = write_example_table(tmp_path / "small.csv", n_rows=150)  # under the autopilot's UMAP size
    with make_client(tmp_path) as client:
        with open(table, "rb") as fh:
            tid = client.post("/api/tables", files={"file": ("small.csv", fh, "text/csv")}).json()["id"]
        r = client.post(f"/api/tables/{tid}/explore", json={"goal": "find groups"})
        assert r.status_code == 202 and r.json()["status"] == "running"
        run = r.json()
        assert client.post(f"/api/tables/{tid}/explore", json={}).status_code == 409
        assert client.delete(f"/api/tables/{tid}").status_code == 409
        events = []
        with client.stream("GET", run["events_url"]) as stream:
            for line in stream.iter_lines():
                if line.startswith("data:"):
                    events.append(json.loads(line[5:]))
        kinds = [e["kind"] for e in events]
        assert kinds[0] == "started" and "step" in kinds and "done" in kinds and kinds[-1] == "end"
        end = events[-1]
        assert end["status"] == "completed" and end["n_findings"] >= 1
        report = client.get(end["report_url"])
        assert report.status_code == 200 and "<script" not in report.text.lower()
        detail = client.get(f"/api/tables/{tid}/runs/{run['id']}").json()
        assert detail["findings"] and detail["findings"][0]["id"] == "F1"
        listed = client.get(f"/api/tables/{tid}/findings").json()["runs"]
        assert listed[0]["report_url"] == end["report_url"]


def test_token_is_required_off_loopback(tmp_path):
    with pytest.raises(ValueError):
        gate_for("0.0.0.0", None)
    with make_client(tmp_path, token="s3cret-token", host="0.0.0.0") as client:
        denied = client.get("/api/tables")
        assert denied.status_code == 401 and "token" in denied.json()["error"]
        assert client.get("/api/tables", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/api/tables", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
        page = client.get("/", follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"] == "/login"
        assert "content-security-policy" in page.headers
        assert client.get("/login").status_code == 200
        code = client.app.state.gate.codes.mint()
        login = client.get(f"/login?code={code}", follow_redirects=False)
        assert login.status_code == 303 and COOKIE_NAME in login.headers["set-cookie"]
        assert "s3cret-token" not in login.headers["set-cookie"] and "httponly" in login.headers["set-cookie"].lower()
        assert client.get("/").status_code == 200  # the cookie now opens the page
        client.cookies.clear()
        assert client.get(f"/login?code={code}").status_code == 401  # one-time
        assert client.post("/login", data={"token": "nope"}).status_code == 401
        assert client.post("/login", data={"token": "s3cret-token"}, follow_redirects=False).status_code == 303


def test_loopback_refuses_foreign_hosts_and_cross_site_posts(tmp_path):
    with make_client(tmp_path) as client:
        assert client.get("/api/status").status_code == 200
        rebound = client.get("/api/status", headers={"host": "evil.example:8765"})
        assert rebound.status_code == 400 and "loopback" in rebound.json()["error"]
        cross = client.post("/api/tables", files={"file": ("a.csv", b"a\n1\n")}, headers={"origin": "https://evil.example"})
        assert cross.status_code == 403
        page = client.get("/")
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("style-src")[0]
        assert page.headers["x-content-type-options"] == "nosniff"
        spec = client.get("/openapi.json").json()
        assert client.get("/docs").headers["content-security-policy"].startswith("default-src 'self'")
    # Behind a reverse proxy (loopback bind, the proxy's Host): the token, not the Host, is the check.
    with make_client(tmp_path, token="proxy-token") as proxied:
        headers = {"host": "serendip.example.org", "authorization": "Bearer proxy-token"}
        assert proxied.get("/api/status", headers=headers).status_code == 200
        assert proxied.get("/api/status", headers={"host": "serendip.example.org"}).status_code == 401
        assert {"/api/tables", "/api/tables/{table_id}/ask", "/api/tables/{table_id}/explore"} <= set(spec["paths"])


def test_serve_generates_and_prints_a_token_off_loopback(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "SERENDIP_MODEL": "", "OPENAI_API_KEY": ""}
    env.pop("SERENDIP_TOKEN", None)
    proc = subprocess.Popen([sys.executable, "-m", "serendip.agent.cli", "serve", "--host", "0.0.0.0", "--port",
                             str(port), "--data-dir", str(tmp_path / "d")], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    try:
        lines = [proc.stdout.readline() for _ in range(5)]
        text = "".join(lines)
        token = next(line.split(": ", 1)[1].strip() for line in lines if line.startswith("Token"))
        assert len(token) >= 24 and "/login?code=" in text and "Bearer" in text
        import httpx

        deadline = time.time() + 60
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/api/status", timeout=5)
                break
            except httpx.TransportError:
                assert time.time() < deadline
                time.sleep(0.3)
        assert r.status_code == 401
        assert httpx.get(f"http://127.0.0.1:{port}/api/status", headers={"Authorization": f"Bearer {token}"}).json()[
            "model"] is None
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    busy = subprocess.run([sys.executable, "-m", "serendip.agent.cli", "serve", "--port", "0"], capture_output=True,
                          text=True, env=env)
    assert busy.returncode == 2 and "--port" in busy.stderr and "Traceback" not in busy.stderr


def test_model_answer_streams_with_tool_calls(tmp_path):
    """With a model (real HTTP to the local stub server), the chat turn streams: the tool call's events,
    the answer's text as it is written, then the answer with its evidence."""
    from serendip.agent.models import build_chat_model
    from serendip.agent.settings import Settings
    from tests.stub_openai_server import StubOpenAIServer, text_reply, tool_calls_reply

    csv = "mass,sfr\n" + "".join(f"{i},{3 * i + i % 5}\n" for i in range(60))
    script = [tool_calls_reply(("correlate", {"columns": ["mass", "sfr"]})),
              text_reply("sfr rises with mass: Spearman 0.99 [R1].")]
    with StubOpenAIServer(script, lifetime=600) as stub:
        mcfg = Settings.defaults(model="stub-model", base_url=stub.base_url, api_key="not-needed")
        with make_client(tmp_path, model="stub-model", base_url=stub.base_url,
                         chat_model_factory=lambda: build_chat_model(mcfg)) as client:
            tid = client.post("/api/tables", files={"file": ("m.csv", csv.encode(), "text/csv")}).json()["id"]
            events = []
            with client.stream("POST", f"/api/tables/{tid}/ask/stream",
                               json={"question": "how does sfr relate to mass?"}) as response:
                for line in response.iter_lines():
                    if line.startswith("data:"):
                        events.append(json.loads(line[5:]))
        assert stub.unexpected == [] and stub.remaining == 0
    kinds = [e["kind"] for e in events]
    assert kinds.index("tool_started") < kinds.index("tool_finished") < kinds.index("text_delta") < kinds.index("answer")
    assert "".join(e["text"] for e in events if e["kind"] == "text_delta") == "sfr rises with mass: Spearman 0.99 [R1]."
    answer = next(e for e in events if e["kind"] == "answer")
    assert answer["source"] == "model" and answer["answered"] and answer["evidence"] == ["R1"]
    assert kinds[-1] == "end"
