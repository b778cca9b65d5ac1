"""A run on a partitioned Parquet dataset: exact statistics and full-row scoring on Dask around an ordinary run
on a sample.

1. list the partitions (Parquet footers), open the Dask client;
2. one pass over every partition on the cluster: exact counts, missing values, sentinels, ranges, moments
   and Pearson's r, t-digest quantiles (:mod:`.sketch`), merged in a tree;
3. a seeded uniform sample sized to the memory budget, gathered into one Parquet file in the run folder:
   the ordinary exploration (same tools, same planner, same outputs) runs on it unchanged;
4. every row scored or assigned, partition by partition on the cluster, with the sample's groupings and
   outlier models (:mod:`.scoring`), written as partitioned Parquet in ``rows/`` beside ``rows.csv``
   (which keeps the sample, its ``row`` column now the row's position in the whole dataset);
5. ``scale.json`` and a report section saying which numbers are exact, the sample, the cluster and the
   time spent on it.

No step holds the whole table in one process: partitions are read by the workers, and only sketches,
the sample and counts come back.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

from serendip.agent.scale.dataset import EXPANSION, Dataset, DatasetError, numeric_arrays, open_dataset, read_part

MAX_SAMPLE_ROWS = 1_000_000
"""Largest sample: the in-memory tools are measured up to 1M rows (evals/BENCH.md)."""
MERGE_FAN_IN = 8
STATE_FILE = "scale_stats.json"


def default_budget_mb() -> int:
    """A quarter of the machine's memory, in MiB."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        total = 8 * 2**30
    return max(256, int(total / 4 / 2**20))


def sample_size(ds: Dataset, budget_mb: int) -> int:
    """Rows of the sample: what the budget holds for an in-memory run, at most MAX_SAMPLE_ROWS."""
    fits = int(budget_mb * 2**20 / (EXPANSION * 8 * max(1, len(ds.columns))))
    return max(1, min(ds.n_rows, MAX_SAMPLE_ROWS, fits))


def shifts_of(ds: Dataset) -> dict[str, float]:
    """A centre per numeric column (the first partition's median) for the power sums."""
    if not ds.numeric:
        return {}
    arrays = numeric_arrays(read_part(ds.parts[0], ds.numeric), ds.numeric)
    out = {}
    for c, v in arrays.items():
        fin = v[np.isfinite(v)]
        out[c] = float(np.median(fin)) if len(fin) else 0.0
    return out


def one_pass(client, ds: Dataset):
    """The merged sketch of every partition and the largest worker peak seen (MiB)."""
    from serendip.agent.scale.tasks import merge_task, sketch_task

    shifts = shifts_of(ds)
    futures = client.map(sketch_task, ds.parts, numeric=ds.numeric, text=ds.text, shifts=shifts, pure=False)
    while len(futures) > 1:
        futures = [client.submit(merge_task, futures[i:i + MERGE_FAN_IN], pure=False)
                   for i in range(0, len(futures), MERGE_FAN_IN)]
    return futures[0].result()


def draw_sample(client, ds: Dataset, n_target: int, seed: int, path: Path) -> tuple[np.ndarray, float]:
    """Write the seeded uniform sample to ``path``; returns its global row numbers and the largest peak (MiB)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from serendip.agent.scale.tasks import sample_task

    fraction = min(1.0, n_target / max(ds.n_rows, 1))
    futures = client.map(sample_task, ds.parts, range(len(ds.parts)), fraction=fraction, seed=seed, pure=False)
    tables, rows, peak = [], [], 0.0
    for fut in futures:  # in partition order: the sample keeps the dataset's row order
        table, r, p = fut.result()
        tables.append(table)
        rows.append(r)
        peak = max(peak, p)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.concat_tables(tables), path)
    return np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64), peak


def _tool_calls(out: Path) -> dict[str, dict]:
    from serendip.agent.transcript import Transcript

    return {r["id"]: r for r in Transcript(out).records() if r.get("type") == "tool_result" and r.get("id")}


def build_models(out: Path, ds: Dataset, sample_path: Path, seed: int) -> tuple[list[dict], list[dict], dict]:
    """Full-row models for the run's group and outlier findings; (models, not extended, agreement on the sample)."""
    import pandas as pd

    from serendip.agent.scale.scoring import NotExtended, build_model, sample_agreement

    findings = json.loads((out / "findings.json").read_text(encoding="utf-8")).get("findings") or []
    wanted = [f for f in findings if f.get("kind") in ("group", "outlier") and f.get("labels")]
    if not wanted:
        return [], [], {}
    rows_csv = pd.read_csv(out / "rows.csv")
    sample = pd.read_parquet(sample_path, columns=ds.numeric)
    calls = _tool_calls(out)
    models, skipped, agreement = [], [], {}
    for f in wanted:
        name = f["labels"]
        call = next((calls[e] for e in f.get("evidence") or [] if e in calls
                     and calls[e].get("tool") in ("cluster", "outliers")), None)
        try:
            if name not in rows_csv.columns:
                raise NotExtended("its labels are not in rows.csv")
            m = build_model(name, f, call, sample, rows_csv[name].to_numpy(), ds.numeric, seed)
        except NotExtended as exc:
            skipped.append({"finding": f["id"], "kind": f["kind"], "why": str(exc)})
            continue
        agreement[f["id"]] = sample_agreement(m, sample, rows_csv[name].to_numpy())
        models.append(m)
    return models, skipped, agreement


def score_all(client, ds: Dataset, models: list[dict], rows_dir: Path) -> tuple[list[dict], float]:
    """Apply the models to every partition on the cluster; merged counts per model and the largest peak."""
    from serendip.agent.scale.tasks import score_task

    if rows_dir.exists():
        shutil.rmtree(rows_dir)
    shared = client.scatter(models, broadcast=True)
    futures = client.map(score_task, ds.parts, range(len(ds.parts)), models=shared, out_dir=str(rows_dir), pure=False)
    totals: list[dict] = [{} for _ in models]
    peak = 0.0
    for fut in futures:
        counts, p = fut.result()
        peak = max(peak, p)
        for total, c in zip(totals, counts):
            for k, v in c.items():
                total[k] = total.get(k, 0) + v
    return totals, peak


def explore_partitioned(cfg, progress=None, resume: bool = False, chat_model=None, force: bool = False):
    """Explore a partitioned Parquet dataset (see the module docstring); returns (outcome, output folder).

    Raises:
        RunSetupError: The dataset cannot be read, the scheduler cannot be reached, or the folder is unusable.
    """
    from serendip.agent.explore import ExploreConfig, RunSetupError, default_out_dir, explore
    from serendip.agent.progress import Progress
    from serendip.agent.scale.cluster import ClusterError, open_client

    progress = progress or Progress(quiet=True)
    budget = int(cfg.settings.memory_budget_mb or default_budget_mb())
    try:
        ds = open_dataset(cfg.table)
    except DatasetError as exc:
        raise RunSetupError(str(exc)) from None
    if ds.n_rows == 0:
        raise RunSetupError(f"{cfg.table} holds no rows")
    stem = Path(cfg.table.rstrip("/").split("*")[0].rstrip("/") or "dataset").name or "dataset"
    out = Path(cfg.out) if cfg.out else default_out_dir(stem)
    if not resume and out.is_dir() and any(p.name != ".workspace" for p in out.iterdir()):
        raise RunSetupError(f"output folder {out} already holds a run; choose another --out or --resume it")
    input_dir = out / ".workspace" / "input"
    sample_path = input_dir / f"{''.join(ch if ch.isalnum() or ch in '-_.' else '_' for ch in stem)[:60]}-sample.parquet"
    state_path = input_dir / STATE_FILE
    try:
        client, info, close = open_client(cfg.settings.cluster, budget)
    except ClusterError as exc:
        raise RunSetupError(str(exc)) from None
    timing: dict[str, float] = {}
    try:
        state = json.loads(state_path.read_text(encoding="utf-8")) if resume and state_path.is_file() else None
        if state is None or not sample_path.is_file():
            progress.step(f"one pass over {ds.n_rows} rows in {len(ds.parts)} partitions on {info.describe()}")
            t0 = time.monotonic()
            sketch, peak_stats = one_pass(client, ds)
            timing["statistics_s"] = time.monotonic() - t0
            n_target = sample_size(ds, budget)
            if cfg.settings.sample_rows:  # asked for: never more than the budget holds
                n_target = max(1, min(n_target, int(cfg.settings.sample_rows)))
            progress.step(f"drawing a seeded uniform sample of about {n_target} rows")
            t0 = time.monotonic()
            sample_rows, peak_sample = draw_sample(client, ds, n_target, cfg.seed, sample_path)
            timing["sample_s"] = time.monotonic() - t0
            np.save(input_dir / "sample_rows.npy", sample_rows, allow_pickle=False)
            state = {"statistics": sketch.summary(), "n_target": n_target, "timing": dict(timing),
                     "peaks_mb": {"statistics": peak_stats, "sample": peak_sample}}
            state_path.write_text(json.dumps(state, default=float), encoding="utf-8")
        sample_rows = np.load(input_dir / "sample_rows.npy", allow_pickle=False)
        progress.done(f"sample of {len(sample_rows)} of {ds.n_rows} rows ready")
        run_cfg = ExploreConfig(table=str(sample_path), goal=cfg.goal, out=str(out), in_process=cfg.in_process,
                                settings=cfg.settings, memory=cfg.memory)
        run_cfg.sample_of = cfg.table
        outcome, out = explore(run_cfg, progress=progress, resume=resume, chat_model=chat_model, force=force)
        progress.step("scoring every row on the cluster")
        t0 = time.monotonic()
        models, skipped, agreement = build_models(out, ds, sample_path, cfg.seed)
        timing["models_s"] = time.monotonic() - t0
        totals, peak_score = [], 0.0
        if models:
            t0 = time.monotonic()
            totals, peak_score = score_all(client, ds, models, out / "rows")
            timing["scoring_s"] = time.monotonic() - t0
        peaks = {str(k): round(float(v), 1) for k, v in client.run(_peak_rss).items()}
    finally:
        close()
    summary = {
        "schema": "serendip.scale/1", "dataset": {"source": cfg.table, "files": len(ds.files), "partitions": len(ds.parts),
                                                  "n_rows": ds.n_rows, "columns": ds.columns},
        "memory_budget_mb": budget, "cluster": info.describe(), "worker_memory_limit_mb": info.memory_limit_mb,
        "worker_peak_rss_mb": peaks,
        "sample": {"path": str(sample_path.relative_to(out)), "n_rows": int(len(sample_rows)), "target": state["n_target"],
                   "seed": cfg.seed, "how": "Bernoulli sample of every partition, seeded by (seed, partition)"},
        "timing_s": {**{k: round(v, 2) for k, v in state.get("timing", {}).items()},
                     **{k: round(v, 2) for k, v in timing.items()}},
        "statistics": state["statistics"],
        "full_rows": [{"finding": m["finding"], "kind": m["kind"], "column": m["name"], "columns": m["columns"],
                       "method": m.get("method", "gaussian assignment"), "counts": t, "sample_agreement": agreement.get(m["finding"])}
                      for m, t in zip(models, totals)],
        "not_extended": skipped, "rows_folder": "rows" if models else None,
    }
    summary["timing_s"]["cluster_total"] = round(sum(v for k, v in summary["timing_s"].items()
                                                     if k in ("statistics_s", "sample_s", "scoring_s")), 2)
    finish_outputs(out, summary, sample_rows)
    return outcome, out


def _peak_rss() -> float:
    from serendip.agent.scale.tasks import peak_rss_mb

    return peak_rss_mb()


def finish_outputs(out: Path, summary: dict, sample_rows: np.ndarray) -> None:
    """scale.json, rows.csv's dataset row numbers, the report section, run.json and the transcript."""
    import pandas as pd

    from serendip.agent.report_html import markdown_to_html
    from serendip.agent.scale.report import scale_section
    from serendip.agent.transcript import Transcript

    (out / "scale.json").write_text(json.dumps(summary, indent=1, default=float), encoding="utf-8")
    rows_csv = out / "rows.csv"
    if rows_csv.is_file():
        df = pd.read_csv(rows_csv)
        if len(df) == len(sample_rows):
            df["row"] = sample_rows
            df.to_csv(rows_csv, index=False)
    md_path = out / "report.md"
    if md_path.is_file():
        md = md_path.read_text(encoding="utf-8").rstrip("\n") + "\n\n" + scale_section(summary)
        md_path.write_text(md, encoding="utf-8")
        title = Path(summary["dataset"]["source"].rstrip("/")).name
        (out / "report.html").write_text(markdown_to_html(md, out, f"Serendip report: {title}"), encoding="utf-8")
    run_json = out / "run.json"
    if run_json.is_file():
        info = json.loads(run_json.read_text(encoding="utf-8"))
        info["scale"] = {k: summary[k] for k in ("dataset", "sample", "cluster", "timing_s", "worker_peak_rss_mb",
                                                 "memory_budget_mb")}
        run_json.write_text(json.dumps(info, indent=2, default=str), encoding="utf-8")
    Transcript(out).append({"type": "scale", "summary": {k: v for k, v in summary.items() if k != "statistics"}})
