"""Several tool runners per run: calls submitted ahead run at the same time, results are recorded in id
order, and state one runner writes (derived columns, artifacts) is seen by the others. In-process runners
(real tools, real files) stand in for sandbox workers, which would cost seconds each to spawn."""

from __future__ import annotations

import json
import threading

import numpy as np
import pandas as pd
import pytest

from serendip.agent.dispatch import Dispatcher
from serendip.agent.ledger import Ledger
from serendip.agent.transcript import Transcript
from serendip.tools.engine.local_runner import LocalRunner
from serendip.tools.engine.pool import WORKERS_VARIABLE, WorkerPool, default_workers
from serendip.tools.engine.table import Table


def frame(n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    x = rng.normal(size=n)
    return pd.DataFrame({"x": x, "y": 2 * x + rng.normal(scale=0.5, size=n), "z": rng.normal(size=n),
                         "w": rng.normal(size=n)})


class SlowFirstRunner(LocalRunner):
    """A runner that holds its first call back until a later call (on another runner) has finished."""

    def __init__(self, *args, gate: threading.Event, slow: bool, seen: list, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.gate, self.slow, self.seen = gate, slow, seen

    def call(self, name, arguments, result_id):
        if self.slow and result_id == "R1":
            assert self.gate.wait(10), "the second call never ran alongside the first"
        result = super().call(name, arguments, result_id)
        self.seen.append((result_id, threading.current_thread().name))
        if result_id == "R2":
            self.gate.set()
        return result


def make_pool(tmp_path, n_workers: int, gate=None, seen=None) -> WorkerPool:
    df = frame()

    def make_worker(index: int):
        table = Table.from_dataframe(df)
        if gate is None:
            return LocalRunner(None, tmp_path, seed=0, table=table)
        # every runner holds R1 back, whichever takes it: R2 can then only finish on the other one
        return SlowFirstRunner(None, tmp_path, seed=0, table=table, gate=gate, slow=True, seen=seen)

    return WorkerPool(make_worker, n_workers)


def run_plan(tmp_path, n_workers: int, gate=None, seen=None) -> tuple[list[str], list[dict]]:
    """Derive a column, then submit three independent calls ahead; returns the transcript's ids and results."""
    with make_pool(tmp_path, n_workers, gate, seen) as pool:
        d = Dispatcher(pool, Ledger(), Transcript(tmp_path))
        first = d.submit("correlate", {"columns": ["x", "y", "z", "w"]}, step=1)
        second = d.submit("pca", {"columns": ["x", "y", "z"]}, step=2)
        made = d.call("residualize", {"y": ["z"], "x": ["x"]}, step=3)  # waits for R1 and R2 as well
        new = made.summary["new_columns"][0]
        d.submit("outliers", {"columns": ["x", "y", "w"], "method": "mahalanobis"}, step=4)
        fourth = d.submit("pca", {"columns": ["x", "y", new]}, step=5)  # reads the column R3 made
        d.flush()
        assert first.recorded and second.recorded and fourth.recorded
    lines = [json.loads(x) for x in (tmp_path / "transcript.jsonl").read_text().splitlines()]
    results = [x for x in lines if x.get("type") == "tool_result"]
    return [r["id"] for r in results], results


def comparable(results: list[dict]) -> list[dict]:
    drop = {"time", "elapsed", "elapsed_s"}
    return [{k: v for k, v in r.items() if k not in drop} for r in results]


def test_calls_ahead_run_side_by_side_and_give_the_transcript_of_one_runner(tmp_path):
    gate, seen = threading.Event(), []
    ids2, two = run_plan(tmp_path / "two", 2, gate, seen)
    assert ids2 == ["R1", "R2", "R3", "R4", "R5"]
    assert seen[0][0] == "R2"  # R2 finished before R1, on another thread: the calls ran side by side
    assert len({thread for _, thread in seen}) == 2
    ids1, one = run_plan(tmp_path / "one", 1)
    assert ids1 == ids2 and comparable(one) == comparable(two)
    assert all(r["ok"] for r in one), [r.get("error") for r in one]


def test_a_derived_column_made_on_one_runner_is_seen_by_another(tmp_path):
    with make_pool(tmp_path, 2) as pool:
        a, b = pool.workers
        made = a.call("residualize", {"y": ["z"], "x": ["x"]}, "R1")
        new = made.summary["new_columns"][0]
        res = b.call("pca", {"columns": ["x", new, "y"]}, "R2")
        assert res.ok, res.error


def test_a_crash_in_a_call_ahead_reaches_the_caller(tmp_path):
    with make_pool(tmp_path, 2) as pool:
        d = Dispatcher(pool, Ledger(), Transcript(tmp_path))
        pending = d.submit("no_such_tool", {}, step=1)
        result = pending.result()  # an unknown tool is the model's mistake: an error result, not a crash
        assert not result.ok and "no_such_tool" in result.error


def test_worker_count_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(WORKERS_VARIABLE, "3")
    assert default_workers() == 3
    monkeypatch.setenv(WORKERS_VARIABLE, "0")
    assert default_workers() == 1
    monkeypatch.setenv(WORKERS_VARIABLE, "many")
    with pytest.raises(ValueError, match=WORKERS_VARIABLE):
        default_workers()
    monkeypatch.delenv(WORKERS_VARIABLE)
    assert 1 <= default_workers() <= 4


def test_a_pinned_tool_runs_on_its_worker(tmp_path):
    ran_on = []

    class Recording(LocalRunner):
        def call(self, name, arguments, result_id):
            ran_on.append((name, threading.current_thread().name))
            return super().call(name, arguments, result_id)

    pool = WorkerPool(lambda i: Recording(None, tmp_path, seed=0, table=Table.from_dataframe(frame())), 2,
                      pinned={"pca": 1})
    with pool:
        futures = [pool.submit("pca", {"columns": ["x", "y", "z"]}, f"R{i}") for i in (1, 2, 3)]
        assert all(f.result().ok for f in futures)
    assert [thread for _, thread in ran_on] == ["serendip-pool-1"] * 3


@pytest.mark.slow
def test_explore_with_two_sandbox_workers_writes_the_findings_of_one(tmp_path, monkeypatch):
    from serendip.agent.explore import ExploreConfig, explore
    from serendip.tools import synthetic

    df, _ = synthetic.trends_table(n=300)
    table = tmp_path / "t.csv"
    df.to_csv(table, index=False)
    outputs = {}
    for workers in ("1", "2"):
        monkeypatch.setenv(WORKERS_VARIABLE, workers)
        outcome, out = explore(ExploreConfig(table=str(table), out=str(tmp_path / f"run{workers}")))
        assert outcome.status == "completed"
        outputs[workers] = (json.loads((out / "findings.json").read_text())["findings"],
                            (out / "rows.csv").read_text(), (out / "report.md").read_text())
    assert outputs["1"][0] and outputs["1"][:2] == outputs["2"][:2]
