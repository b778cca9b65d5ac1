"""The sandbox worker: calls, time and memory limits with restarts, crashes, clean shutdown."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sandbox_loaders import unreadable_loader
from serendip.tools.engine.errors import TableLoadError
from serendip.tools.engine.registry import REGISTRY, call_tool
from serendip.tools.engine.sandbox import SandboxLimits, ToolCrash, WorkerRunner, worker_environment
from serendip.tools.engine.session import Session
from serendip.tools.engine.table import Table

TESTS_DIR = Path(__file__).resolve().parent


def example_frame(n: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    x = rng.normal(size=n)
    return pd.DataFrame({"x": x, "y": 2 * x + rng.normal(scale=0.5, size=n), "z": rng.normal(size=n)})


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture
def make_runner(tmp_path):
    """Factory for runners over ``example_frame`` with the misbehaving test tools; all closed at teardown."""
    runners = []

    def factory(limits: SandboxLimits = SandboxLimits(), **kwargs) -> WorkerRunner:
        kwargs.setdefault("table", Table.from_dataframe(example_frame()))
        runner = WorkerRunner(kwargs.pop("table_path", None), tmp_path / f"run{len(runners)}", seed=0,
                              limits=limits, extra_tool_modules=["sandbox_tools"],
                              extra_sys_path=[str(TESTS_DIR)], **kwargs)
        runners.append(runner)
        return runner

    yield factory
    for runner in runners:
        runner.close()


@pytest.fixture(scope="module")
def shared_runner(tmp_path_factory):
    """One worker with default limits for the tests that do not restart it (spawning costs seconds)."""
    runner = WorkerRunner(None, tmp_path_factory.mktemp("shared"), table=Table.from_dataframe(example_frame()),
                          extra_tool_modules=["sandbox_tools"], extra_sys_path=[str(TESTS_DIR)])
    with runner:
        yield runner


def test_calls_match_in_process_results(shared_runner, tmp_path):
    runner = shared_runner
    calls = [("residualize", {"y": "y", "x": ["x"], "name": "resid_shared"}), ("pca", {})]
    remote = [runner.call(name, args, f"R{i + 1}") for i, (name, args) in enumerate(calls)]
    local_session = Session(Table.from_dataframe(example_frame()), tmp_path / "local", seed=0)
    local = [call_tool(local_session, name, args, result_id=f"R{i + 1}") for i, (name, args) in enumerate(calls)]
    for got, expected in zip(remote, local):
        assert got.ok, got.error
        got, expected = got.to_dict(), expected.to_dict()
        got.pop("elapsed"), expected.pop("elapsed")
        assert got == expected
    pca = remote[1]
    assert pca.figures and all((runner.workdir / f).is_file() for f in pca.figures)
    for name in pca.artifacts:  # per-row arrays written in the worker's workspace, equal to in-process ones
        worker_values = np.load(runner.workdir / ".workspace" / "artifacts" / f"{name}.npy")
        np.testing.assert_array_equal(worker_values, local_session.load_artifact(name))
    assert pca.artifacts


def test_worker_reports_tools_table_and_limits(shared_runner):
    runner = shared_runner
    schemas = {s["function"]["name"] for s in runner.tool_schemas()}
    assert runner.call("residualize", {"y": "y", "x": ["z"], "name": "resid_info"}, "R3").ok
    info = runner.table_info()
    where = runner.call("where_am_i", {}, "R4").summary
    assert {"residualize", "pca", "sleep_for", "allocate_mb"} <= schemas
    assert "sleep_for" not in REGISTRY  # the test tools live only in the worker
    assert info["n_rows"] == 400 and [c["name"] for c in info["columns"]][:3] == ["x", "y", "z"]
    assert "resid_info" in info["derived_columns"]  # the worker's table has the new column
    assert where["cwd"] == str(runner.workdir / ".workspace")
    assert where["rlimit_as"] == SandboxLimits().memory_limit_mb * 1024 * 1024
    assert where["pid"] != os.getpid()
    expected_env = {**worker_environment(), **os.environ}  # the user's settings win
    assert where["blas_threads"] == expected_env["OPENBLAS_NUM_THREADS"]
    assert where["omp_threads"] == expected_env["OMP_NUM_THREADS"]


def test_workers_fork_from_one_preloaded_server_with_their_own_thread_counts(make_runner, monkeypatch):
    one = make_runner(n_threads=1).start().call("where_am_i", {}, "R1").summary
    two = make_runner(n_threads=2).start().call("where_am_i", {}, "R1").summary
    # forked from the same forkserver (not from this process), which had imported the tools already
    assert one["parent"] == two["parent"] != os.getpid() and one["preloaded"] and two["preloaded"]
    if "OMP_NUM_THREADS" not in os.environ:  # the user's setting wins over the worker's own
        assert (one["omp_threads"], two["omp_threads"]) == ("1", "2")
        assert set(one["openmp_pools"]) <= {1} and set(two["openmp_pools"]) <= {2}
    monkeypatch.setenv("SERENDIP_WORKER_START", "spawn")
    fresh = make_runner().start().call("where_am_i", {}, "R1").summary
    assert fresh["parent"] == os.getpid() and not fresh["preloaded"]


def test_bad_arguments_come_back_as_error_result(shared_runner):
    result = shared_runner.call("residualize", '{"y": "nope", "x": ["x"]}', "R1")
    unknown = shared_runner.call("no_such_tool", {}, "R2")
    assert result.error and "unknown column" in result.error and result.id == "R1"
    assert unknown.error and "no tool named" in unknown.error


@pytest.mark.slow
def test_time_limit_stops_call_and_state_survives_restart(make_runner):
    runner = make_runner(SandboxLimits(time_limit_s=2.0)).start()
    made = runner.call("residualize", {"y": "y", "x": ["x"], "name": "resid"}, "R1")
    assert made.ok, made.error
    first_pid = runner.pid

    stopped = runner.call("sleep_for", {"seconds": 60}, "R2")

    assert stopped.error.startswith("The call to sleep_for exceeded its time limit of 2 s")
    assert "worker was restarted" in stopped.error
    assert stopped.id == "R2" and stopped.tool == "sleep_for" and stopped.arguments == {"seconds": 60}
    assert 2.0 <= stopped.elapsed < 30
    assert runner.pid != first_pid and process_gone(first_pid)
    assert runner.restarts == 1
    again = runner.call("residualize", {"y": "resid", "x": ["z"], "name": "resid2"}, "R3")
    assert again.ok, again.error  # the derived column made before the restart is still there
    assert {"resid", "resid2"} <= set(runner.table_info()["derived_columns"])


@pytest.mark.slow
def test_memory_cap_stops_call_and_next_call_works(make_runner):
    runner = make_runner(SandboxLimits(memory_limit_mb=2500)).start()
    small = runner.call("allocate_mb", {"megabytes": 100}, "R1")
    assert small.ok, small.error

    big = runner.call("allocate_mb", {"megabytes": 6000}, "R2")

    assert big.error.startswith("The call to allocate_mb exceeded its memory limit of 2500 MB")
    assert runner.restarts == 1
    assert runner.call("allocate_mb", {"megabytes": 100}, "R3").ok


def test_bug_in_tool_raises_tool_crash_with_one_line(shared_runner):
    with pytest.raises(ToolCrash) as info:
        shared_runner.call("raise_bug", {"message": "boom"}, "R9")
    assert info.value.tool == "raise_bug" and info.value.exc_type == "KeyError"
    assert "boom" in str(info.value) and "second line" not in str(info.value)
    assert "Traceback" in (shared_runner.workdir / ".workspace" / "worker.log").read_text()


@pytest.mark.slow
def test_worker_death_is_an_error_result_then_restart(make_runner):
    runner = make_runner().start()
    dead = runner.call("exit_worker", {"code": 7}, "R1")
    assert "stopped unexpectedly (exit code 7)" in dead.error
    assert runner.call("residualize", {"y": "y", "x": ["x"]}, "R2").ok


def test_table_path_is_loaded_in_the_worker(make_runner, tmp_path):
    csv = tmp_path / "t.csv"
    example_frame(50).to_csv(csv, index=False)
    with make_runner(table=None, table_path=str(csv)) as runner:  # the real load_table
        info = runner.table_info()
    assert info["n_rows"] == 50 and info["format"] == "csv" and len(info["sha256"]) == 64
    garbage = tmp_path / "garbage.csv"
    garbage.write_bytes(b"\x00\x01\x02 not a table")
    bad = make_runner(table=None, table_path=str(garbage))
    with pytest.raises(TableLoadError, match="garbage.csv"):
        bad.start()
    assert not bad.is_alive()


def test_injected_loader_is_used(make_runner, tmp_path):
    runner = make_runner(table=None, table_path=str(tmp_path / "x.csv"), loader=unreadable_loader)
    with pytest.raises(TableLoadError, match="x.csv: not a table"):
        runner.start()


def test_close_leaves_no_process(make_runner):
    runner = make_runner().start()
    pid = runner.pid
    assert not process_gone(pid)
    runner.close()
    runner.close()  # idempotent
    assert process_gone(pid)
    assert runner.pid is None
    assert all(p.pid != pid for p in multiprocessing.active_children())
