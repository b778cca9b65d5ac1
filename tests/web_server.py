"""A real ``serendip serve`` on a free loopback port, for the browser and load tests."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_server(data_dir: Path, *extra: str, startup_s: float = 120.0):
    """Start the server, wait until it answers, yield (base URL, process), stop it."""
    port = free_port()
    env = {**os.environ, "SERENDIP_MODEL": "", "OPENAI_API_KEY": "", "OPENAI_BASE_URL": "", "SERENDIP_BASE_URL": ""}
    env.pop("SERENDIP_TOKEN", None)
    log = open(Path(data_dir).parent / f"serve-{port}.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "serendip.agent.cli", "serve", "--port", str(port), "--data-dir",
                             str(data_dir), *extra], stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + startup_s
        while True:
            try:
                httpx.get(f"{base}/api/status", timeout=5)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"the server did not start; see {log.name}")
                time.sleep(0.3)
        yield base, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
