"""A partitioned Parquet dataset with planted structure, written one partition at a time (tests, benchmark).

Planted: three groups in ``g1``/``g2`` (well separated, sizes 50/30/20%), a trend ``y = 0.8 x + noise``,
and 0.5% outliers: rows whose six numeric columns all sit 8-12 units from zero, with random signs (far
from every group and off the trend); a categorical ``field`` and ``n_extra`` pure-noise columns. Each file holds ``rows_per_file`` rows in row groups of ``row_group`` rows; the truth (group
and outlier flag of every row) can be written beside it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

GROUP_MEANS = np.array([[0.0, 0.0], [6.0, 0.0], [3.0, 6.0]])
GROUP_SHARES = np.array([0.5, 0.3, 0.2])
OUTLIER_FRACTION = 0.005
OUTLIER_SIGMA = 8.0


def planted_part(n: int, seed: int, n_extra: int = 0) -> tuple[dict, np.ndarray, np.ndarray]:
    """One partition's columns, its true groups and its true outlier flags."""
    rng = np.random.default_rng(seed)
    group = rng.choice(3, size=n, p=GROUP_SHARES)
    g = GROUP_MEANS[group] + rng.normal(size=(n, 2))
    x = rng.normal(size=n)
    y = 0.8 * x + rng.normal(scale=0.6, size=n)
    noise = rng.normal(size=(n, 2))
    outlier = rng.random(n) < OUTLIER_FRACTION
    k = int(outlier.sum())
    far = rng.choice([-1.0, 1.0], size=(k, 6)) * rng.uniform(OUTLIER_SIGMA, 1.5 * OUTLIER_SIGMA, size=(k, 6))
    g[outlier], noise[outlier] = far[:, :2], far[:, 4:]
    x[outlier], y[outlier] = far[:, 2], far[:, 3]
    cols = {"field": rng.choice(["north", "south", "equator"], size=n), "g1": g[:, 0], "g2": g[:, 1], "x": x, "y": y,
            "n1": noise[:, 0], "n2": noise[:, 1]}
    for k in range(n_extra):
        cols[f"e{k + 1}"] = rng.normal(size=n)
    return cols, group, outlier


def write_planted_dataset(folder: str | Path, n_rows: int, n_files: int = 8, row_group: int = 100_000,
                          seed: int = 0, n_extra: int = 0, truth: bool = False) -> Path:
    """Write ``n_rows`` planted rows as ``n_files`` Parquet files in ``folder``; returns the folder."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    per_file = -(-n_rows // n_files)
    truths = []
    done = 0
    for f in range(n_files):
        n = min(per_file, n_rows - done)
        if n <= 0:
            break
        with pq.ParquetWriter(folder / f"part-{f:03d}.parquet", schema=_schema(n_extra)) as writer:
            start = 0
            while start < n:
                m = min(row_group, n - start)
                cols, group, outlier = planted_part(m, seed * 1_000_003 + done + start, n_extra)
                writer.write_table(pa.table(cols, schema=_schema(n_extra)), row_group_size=m)
                if truth:
                    truths.append((group, outlier))
                start += m
        done += n
    if truth:
        np.savez(folder.parent / f"{folder.name}-truth.npz", group=np.concatenate([t[0] for t in truths]),
                 outlier=np.concatenate([t[1] for t in truths]))
    return folder


def _schema(n_extra: int):
    import pyarrow as pa

    fields = [pa.field("field", pa.string())] + [pa.field(c, pa.float64()) for c in ("g1", "g2", "x", "y", "n1", "n2")]
    fields += [pa.field(f"e{k + 1}", pa.float64()) for k in range(n_extra)]
    return pa.schema(fields)
