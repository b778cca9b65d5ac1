"""One-pass statistics of a partition, merged exactly across partitions.

Per numeric column: rows, missing (null or NaN), the smallest and largest few distinct values with their
counts (ranges, and customary "no value" codes sitting at an extreme: sentinels), power sums of the values
about a shift (mean, variance, skewness, kurtosis) and a t-digest (``crick.TDigest``, mergeable) for
quantiles. Per pair of numeric columns: pairwise-complete co-moment sums, from which Pearson's r follows
exactly. Per text column: value counts (exact up to :data:`MAX_LEVELS` distinct values).

Power sums are kept about a shift (a value near the column's centre, the same for every partition) so
that the variance does not cancel catastrophically; merging is then plain addition. Removing a
sentinel's cells afterwards is subtraction of their own power sums, so one pass is enough.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

EXTREMES = 4
"""Distinct values kept at each end of a column (enough to step past a sentinel or two)."""
MAX_LEVELS = 1000
"""Distinct text values counted exactly; beyond that the counts are marked incomplete."""
DIGEST_COMPRESSION = 200.0


def _extremes(values: np.ndarray, lowest: bool) -> list[tuple[float, int]]:
    """The EXTREMES smallest (or largest) distinct finite values with their counts."""
    out: list[tuple[float, int]] = []
    rest = values
    while len(out) < EXTREMES and len(rest):
        v = rest.min() if lowest else rest.max()
        same = rest == v
        out.append((float(v), int(np.count_nonzero(same))))
        rest = rest[~same]
    return out


def _merge_extremes(a: list, b: list, lowest: bool) -> list[tuple[float, int]]:
    counts: dict[float, int] = {}
    for v, c in list(a) + list(b):
        counts[v] = counts.get(v, 0) + c
    keys = sorted(counts, reverse=not lowest)[:EXTREMES]
    return [(v, counts[v]) for v in keys]


@dataclass
class NumericSketch:
    """Mergeable statistics of one numeric column.

    Attributes:
        shift: The value the power sums are taken about (same in every partition).
        n_rows: Cells seen.
        n_missing: Null or NaN cells.
        sums: Sums of (x - shift)^k for k = 1..4 over finite cells.
        n_finite: Finite cells.
        low: Smallest distinct values with counts.
        high: Largest distinct values with counts.
        digest: t-digest of the finite values.
    """

    shift: float
    n_rows: int = 0
    n_missing: int = 0
    n_finite: int = 0
    sums: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0, 0.0])
    low: list = field(default_factory=list)
    high: list = field(default_factory=list)
    digest: object = None

    @classmethod
    def of(cls, values: np.ndarray, shift: float) -> "NumericSketch":
        """The sketch of one partition's values (NaN = missing)."""
        from crick import TDigest

        v = np.asarray(values, dtype=float)
        finite = v[np.isfinite(v)]
        d = finite - shift
        d2 = d * d
        digest = TDigest(DIGEST_COMPRESSION)
        if len(finite):
            digest.update(finite)
        return cls(shift=shift, n_rows=len(v), n_missing=int(np.count_nonzero(np.isnan(v))), n_finite=len(finite),
                   sums=[float(d.sum()), float(d2.sum()), float((d2 * d).sum()), float((d2 * d2).sum())],
                   low=_extremes(finite, True), high=_extremes(finite, False), digest=digest)

    def merge(self, other: "NumericSketch") -> "NumericSketch":
        """This sketch and ``other`` together (same shift)."""
        if other.shift != self.shift:
            raise ValueError("sketches of one column must share their shift")
        self.digest.merge(other.digest)
        return NumericSketch(self.shift, self.n_rows + other.n_rows, self.n_missing + other.n_missing,
                             self.n_finite + other.n_finite, [a + b for a, b in zip(self.sums, other.sums)],
                             _merge_extremes(self.low, other.low, True), _merge_extremes(self.high, other.high, False),
                             self.digest)

    # ------------------------------------------------------------------ results
    def sentinels(self) -> list[tuple[float, int]]:
        """Customary "no value" codes at either end of the column that repeat (value, count)."""
        from serendip.tools.loading.sentinels import looks_like_sentinel

        out = []
        for ends in (self.low, self.high):
            for v, c in ends[:2]:
                if c >= 2 and looks_like_sentinel(v) and (v, c) not in out:
                    out.append((v, c))
                else:
                    break
        return out

    def summary(self, quantiles=(0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)) -> dict:
        """Exact counts, range and moments (sentinel cells excluded), and t-digest quantiles."""
        sent = self.sentinels()
        bad = {v for v, _ in sent}
        n = self.n_finite - sum(c for _, c in sent)
        s = list(self.sums)
        for v, c in sent:
            d = v - self.shift
            for k in range(4):
                s[k] -= c * d ** (k + 1)
        out = {"n_rows": self.n_rows, "n_missing": self.n_missing, "n_sentinel": sum(c for _, c in sent),
               "sentinels": [v for v, _ in sent], "n": n}
        lows = [v for v, _ in self.low if v not in bad]
        highs = [v for v, _ in self.high if v not in bad]
        out["min"] = lows[0] if lows else None
        out["max"] = highs[0] if highs else None
        if n > 0:
            m1 = s[0] / n
            mean = self.shift + m1
            var = max(s[1] / n - m1 ** 2, 0.0)
            m3 = s[2] / n - 3 * m1 * s[1] / n + 2 * m1 ** 3
            m4 = s[3] / n - 4 * m1 * s[2] / n + 6 * m1 ** 2 * s[1] / n - 3 * m1 ** 4
            out.update({"mean": mean, "std": math.sqrt(var * n / (n - 1)) if n > 1 else 0.0,
                        "skewness": m3 / var ** 1.5 if var > 0 else None,
                        "excess_kurtosis": m4 / var ** 2 - 3 if var > 0 else None})
        if self.digest is not None and self.n_finite and not sent:
            out["quantiles"] = {str(q): float(x) for q, x in zip(quantiles, self.digest.quantile(list(quantiles)))}
        elif self.n_finite:
            out["quantiles"] = None  # the digest holds the sentinel cells too: not honest quantiles
        return out


@dataclass
class CoMoments:
    """Pairwise-complete co-moment sums of a set of numeric columns (merge = addition).

    Attributes:
        columns: The columns.
        shift: Per-column shift (as in the column sketches).
        n: n[i, j] rows where both i and j are finite.
        sx: sx[i, j] sum of (x_i - shift_i) over those rows.
        sxx: sxx[i, j] sum of (x_i - shift_i)^2 over those rows.
        sxy: sxy[i, j] sum of the products over those rows.
    """

    columns: list[str]
    shift: np.ndarray
    n: np.ndarray
    sx: np.ndarray
    sxx: np.ndarray
    sxy: np.ndarray

    @classmethod
    def of(cls, X: np.ndarray, columns: list[str], shift: np.ndarray) -> "CoMoments":
        """From one partition's (rows × columns) values (NaN = missing)."""
        X = np.asarray(X, dtype=float) - shift[None, :]
        mask = np.isfinite(X)
        M = mask.astype(float)
        X0 = np.where(mask, X, 0.0)
        return cls(list(columns), np.asarray(shift, dtype=float), M.T @ M, X0.T @ M, (X0 * X0).T @ M, X0.T @ X0)

    def merge(self, other: "CoMoments") -> "CoMoments":
        """Both partitions' sums."""
        return CoMoments(self.columns, self.shift, self.n + other.n, self.sx + other.sx, self.sxx + other.sxx,
                         self.sxy + other.sxy)

    def pearson(self) -> np.ndarray:
        """Pearson's r of every pair over the rows where both are finite (NaN where undefined)."""
        n, sx, sxx, sxy = self.n, self.sx, self.sxx, self.sxy
        cov = n * sxy - sx * sx.T
        var_i = n * sxx - sx * sx
        with np.errstate(invalid="ignore", divide="ignore"):
            r = cov / np.sqrt(var_i * var_i.T)
        r[(n < 3) | ~np.isfinite(r)] = np.nan
        return np.clip(r, -1.0, 1.0)


@dataclass
class TextSketch:
    """Value counts of a text column (exact while there are at most MAX_LEVELS distinct values)."""

    n_rows: int = 0
    n_missing: int = 0
    counts: dict = field(default_factory=dict)
    complete: bool = True

    @classmethod
    def of(cls, values: list) -> "TextSketch":
        counts: dict = {}
        missing = 0
        for v in values:
            if v is None:
                missing += 1
            else:
                counts[v] = counts.get(v, 0) + 1
        out = cls(len(values), missing, counts)
        return out._cap()

    def merge(self, other: "TextSketch") -> "TextSketch":
        counts = dict(self.counts)
        for k, c in other.counts.items():
            counts[k] = counts.get(k, 0) + c
        return TextSketch(self.n_rows + other.n_rows, self.n_missing + other.n_missing, counts,
                          self.complete and other.complete)._cap()

    def _cap(self) -> "TextSketch":
        if len(self.counts) > MAX_LEVELS:
            top = sorted(self.counts.items(), key=lambda kv: -kv[1])[:MAX_LEVELS]
            self.counts, self.complete = dict(top), False
        return self

    def summary(self, top: int = 20) -> dict:
        levels = sorted(self.counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
        return {"n_rows": self.n_rows, "n_missing": self.n_missing, "n_distinct": len(self.counts) if self.complete else None,
                "counts_exact": self.complete, "top": [[str(k), c] for k, c in levels[:top]]}


@dataclass
class TableSketch:
    """Everything one pass gathers about a partition (or, merged, about the whole dataset)."""

    n_rows: int
    numeric: dict[str, NumericSketch]
    text: dict[str, TextSketch]
    comoments: CoMoments | None

    def merge(self, other: "TableSketch") -> "TableSketch":
        """Two partitions' sketches as one."""
        return TableSketch(self.n_rows + other.n_rows,
                           {c: s.merge(other.numeric[c]) for c, s in self.numeric.items()},
                           {c: s.merge(other.text[c]) for c, s in self.text.items()},
                           self.comoments.merge(other.comoments) if self.comoments is not None else None)

    def summary(self) -> dict:
        """JSON-safe: per-column statistics and the Pearson matrix (which are exact is said in 'exact')."""
        out = {"n_rows": self.n_rows,
               "exact": ["n_rows", "n_missing", "n_sentinel", "min", "max", "mean", "std", "skewness",
                         "excess_kurtosis", "pearson", "text counts (when counts_exact)"],
               "approximate": ["quantiles (t-digest, compression %g)" % DIGEST_COMPRESSION],
               "numeric": {c: s.summary() for c, s in self.numeric.items()},
               "text": {c: s.summary() for c, s in self.text.items()}}
        if self.comoments is not None:
            r = self.comoments.pearson()
            out["pearson"] = {"columns": self.comoments.columns,
                              "r": [[None if not np.isfinite(v) else round(float(v), 6) for v in row] for row in r]}
        return out


def sketch_arrays(numeric: dict[str, np.ndarray], text: dict[str, list], shifts: dict[str, float]) -> TableSketch:
    """The sketch of one partition given as column arrays (numeric with NaN for missing; text lists with None)."""
    n_rows = len(next(iter(numeric.values()))) if numeric else (len(next(iter(text.values()))) if text else 0)
    names = list(numeric)
    como = None
    if names:
        X = np.column_stack([numeric[c] for c in names]).astype(float)
        como = CoMoments.of(X, names, np.array([shifts[c] for c in names], dtype=float))
    return TableSketch(n_rows, {c: NumericSketch.of(v, shifts[c]) for c, v in numeric.items()},
                       {c: TextSketch.of(v) for c, v in text.items()}, como)
