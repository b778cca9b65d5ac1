"""What a Dask worker does with one partition: sketch it, sample it, or score every row of it.

Each task reads its own row group from the Parquet file (nothing travels but small results), imports
numpy, pyarrow and crick (never pandas or scikit-learn), and returns the worker process's peak resident memory so the run can
say how close the workers came to their limit.
"""

from __future__ import annotations

import resource
from pathlib import Path

import numpy as np

from serendip.agent.scale.dataset import Part, arrow_array, numeric_arrays, read_part, text_lists


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB.

    /proc's VmHWM, not ``getrusage``: Linux carries ``ru_maxrss`` across exec, so a worker spawned by a big
    process would report its parent's peak (measured: 377 MiB on both workers of a test run).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def sketch_task(part: Part, numeric: list[str], text: list[str], shifts: dict[str, float]):
    """The one-pass sketch of a partition, with the worker's peak memory."""
    from serendip.agent.scale.sketch import sketch_arrays

    table = read_part(part, numeric + text)
    sk = sketch_arrays(numeric_arrays(table, numeric), text_lists(table, text), shifts)
    return sk, peak_rss_mb()


def merge_task(sketches: list):
    """Merge (sketch, peak) pairs into one sketch and the largest peak."""
    sk = sketches[0][0]
    for other, _ in sketches[1:]:
        sk = sk.merge(other)
    return sk, max(p for _, p in sketches)


def sample_task(part: Part, index: int, fraction: float, seed: int):
    """A seeded uniform (Bernoulli) sample of a partition's rows: (arrow table, global row numbers, peak)."""
    rng = np.random.default_rng([seed, index])
    keep = np.flatnonzero(rng.random(part.n_rows) < fraction)
    table = read_part(part, None)
    table = table.take(arrow_array(keep.astype(np.int64))) if len(keep) else table.slice(0, 0)
    return table, (part.offset + keep).astype(np.int64), peak_rss_mb()


def score_task(part: Part, index: int, models: list[dict], out_dir: str):
    """Score / assign every row of a partition with the sample's models; write ``out_dir/part-NNNNN.parquet``.

    Returns:
        Per model the counts it gives this partition ({label: rows} or flagged rows), and the peak memory.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from serendip.agent.scale.scoring import apply_model, raw_columns

    needed = sorted({c for m in models for c in raw_columns(m)})
    table = read_part(part, needed)
    raw = numeric_arrays(table, needed)
    columns = {"row": arrow_array(np.arange(part.offset, part.offset + part.n_rows, dtype=np.int64))}
    counts = []
    for m in models:
        values, score, count = apply_model(m, raw, part.n_rows)
        columns[m["name"]] = arrow_array(values)
        if score is not None:
            columns[m["name"] + "_score"] = arrow_array(score.astype(np.float32))
        counts.append(count)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_arrays(list(columns.values()), names=list(columns)),
                   Path(out_dir) / f"part-{index:05d}.parquet")
    return counts, peak_rss_mb()
