"""The process one overnight run lives in: ``python -m serendip.agent.overnight.worker SPEC.json PARENT_PID``.

A run gets a process of its own so that a hanging run can be killed (with its tool worker, which shares
its process group) without touching the others, and so that a killed overnight process takes its runs
with it (the run watches its parent and exits when it is gone).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path


def _watch_parent(parent_pid: int) -> None:
    while True:
        if os.getppid() != parent_pid:
            os._exit(3)
        time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    """Make the run described by the spec file; exit 0 when a record was written."""
    argv = sys.argv[1:] if argv is None else argv
    spec_path, parent_pid = Path(argv[0]), int(argv[1])
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    os.environ.setdefault("MPLBACKEND", "Agg")
    if json.loads(spec_path.read_text(encoding="utf-8")).get("isolate_tools", True):
        from serendip.tools.engine.sandbox import start_worker_server

        start_worker_server()  # its imports run while this process imports the agent
    from serendip.agent.overnight.runs import RunSpec, execute_run

    spec = RunSpec.model_validate_json(spec_path.read_text(encoding="utf-8"))
    execute_run(spec)
    return 0


if __name__ == "__main__":
    sys.exit(main())
