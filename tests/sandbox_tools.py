"""Tools that misbehave on purpose, imported only inside sandbox workers started by tests/test_sandbox.py
(never registered in the test process itself)."""

from __future__ import annotations

import os
import time
from typing import Annotated

import numpy as np
from pydantic import Field

from serendip.tools.engine.registry import tool
from serendip.tools.engine.result import ToolResult


@tool
def sleep_for(session, seconds: Annotated[float, Field(ge=0, le=3600)]) -> ToolResult:
    """Sleep, to test the sandbox's time limit.

    Args:
        seconds: How long to sleep.
    """
    time.sleep(seconds)
    return ToolResult(summary={"slept": seconds})


@tool
def allocate_mb(session, megabytes: Annotated[int, Field(ge=1)]) -> ToolResult:
    """Allocate and touch memory, to test the sandbox's memory cap.

    Args:
        megabytes: How much to allocate.
    """
    block = np.ones(megabytes * 1024 * 1024 // 8)
    return ToolResult(summary={"allocated_mb": megabytes, "checksum": float(block[:10].sum())})


@tool
def raise_bug(session, message: str = "boom") -> ToolResult:
    """Raise an unexpected exception, to test that bugs end the run.

    Args:
        message: The exception's message.
    """
    raise KeyError(message + "\nsecond line that must not reach the model")


@tool
def exit_worker(session, code: Annotated[int, Field(ge=1, le=100)] = 7) -> ToolResult:
    """End the worker process abruptly, to test restarts after an unexplained death.

    Args:
        code: The exit code.
    """
    os._exit(code)


@tool
def where_am_i(session) -> ToolResult:
    """Report the worker's working directory, pid and address-space cap."""
    import resource
    import sys

    from threadpoolctl import threadpool_info

    return ToolResult(summary={"cwd": os.getcwd(), "pid": os.getpid(), "parent": os.getppid(),
                               "rlimit_as": resource.getrlimit(resource.RLIMIT_AS)[0],
                               "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
                               "omp_threads": os.environ.get("OMP_NUM_THREADS"),
                               "openmp_pools": sorted({p["num_threads"] for p in threadpool_info()
                                                       if p["user_api"] == "openmp"}),
                               "preloaded": "serendip.tools.engine.worker_preload" in sys.modules})
