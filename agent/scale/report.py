"""The report section of a partitioned run: what is exact, the sample, the cluster, every row's labels."""

from __future__ import annotations

from serendip.agent.report import escape_md, fmt
from serendip.tools.engine.mdtext import code

MAX_COLUMNS_SHOWN = 30
MAX_PAIRS_SHOWN = 10


def _pairs(pearson: dict) -> list[tuple[str, str, float]]:
    cols, r = pearson["columns"], pearson["r"]
    out = []
    for i in range(len(cols)):
        for j in range(i + 1, len(cols)):
            if r[i][j] is not None:
                out.append((cols[i], cols[j], r[i][j]))
    return sorted(out, key=lambda t: -abs(t[2]))


def scale_section(s: dict) -> str:
    """Markdown for ``scale.json``'s summary."""
    ds, sample, t = s["dataset"], s["sample"], s["timing_s"]
    stats = s["statistics"]
    lines = ["## The whole dataset (partitioned, through Dask)", "",
             f"{code(ds['source'], limit=120)}: {ds['n_rows']} rows in {ds['partitions']} partitions of {ds['files']} "
             f"Parquet file(s), explored on {escape_md(s['cluster'])} with a memory budget of {s['memory_budget_mb']} MiB.",
             "",
             f"**Sample.** The findings above come from a seeded uniform sample of **{sample['n_rows']} rows** "
             f"({sample['n_rows'] / max(ds['n_rows'], 1):.2%} of the rows; seed {sample['seed']}; "
             f"{escape_md(sample['how'])}), sized to the memory budget; `rows.csv` holds the sample, its `row` column "
             "the row's position in the whole dataset. Their p-values and effects are those of the sample.", "",
             f"**Exact** (one pass over every row, merged across partitions): row counts, missing values, sentinels, "
             f"ranges, means, standard deviations, skewness, kurtosis and Pearson's r below. **Approximate**: the "
             f"quantiles (t-digest sketches, merged). **Time on the cluster**: {fmt(t.get('cluster_total', 0))} s "
             f"(statistics {fmt(t.get('statistics_s', 0))} s, sample {fmt(t.get('sample_s', 0))} s, scoring every row "
             f"{fmt(t.get('scoring_s', 0))} s).", ""]
    peaks = s.get("worker_peak_rss_mb") or {}
    limits = [m for m in s.get("worker_memory_limit_mb") or [] if m]
    if peaks:
        lines += [f"Peak memory per worker: {', '.join(fmt(v) for v in peaks.values())} MiB"
                  + (f" (limit {fmt(min(limits))} MiB)." if limits else "."), ""]
    num = stats.get("numeric") or {}
    if num:
        lines += ["| column | rows | missing | sentinels | min | max | mean | std | median (approx.) |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for c, v in list(num.items())[:MAX_COLUMNS_SHOWN]:
            med = (v.get("quantiles") or {}).get("0.5")
            lines.append(f"| {code(c)} | {v['n_rows']} | {v['n_missing']} | {v['n_sentinel']} | {fmt(v.get('min'))} | "
                         f"{fmt(v.get('max'))} | {fmt(v.get('mean'))} | {fmt(v.get('std'))} | {fmt(med)} |")
        if len(num) > MAX_COLUMNS_SHOWN:
            lines.append(f"| … {len(num) - MAX_COLUMNS_SHOWN} more in `scale.json` | | | | | | | | |")
        lines.append("")
    if stats.get("pearson"):
        pairs = _pairs(stats["pearson"])[:MAX_PAIRS_SHOWN]
        if pairs:
            lines += ["Strongest linear relations over every row (Pearson's r, exact): "
                      + "; ".join(f"{code(a)}–{code(b)} {fmt(r)}" for a, b, r in pairs) + ".", ""]
    if s.get("full_rows"):
        lines += ["**Every row labelled.** The sample's groupings and outlier sets were applied to all rows, partition by "
                  "partition on the cluster (`rows/*.parquet`: `row`, then one column per finding, and a `_score` "
                  "column for outliers):", ""]
        for m in s["full_rows"]:
            agree = m.get("sample_agreement") or {}
            if m["kind"] == "group":
                sizes = {int(k): v for k, v in m["counts"].items()}
                sizes_text = ", ".join(f"group {k}: {v}" for k, v in sorted(sizes.items()) if k >= 0)
                left = sizes.get(-1, 0)
                lines.append(f"- **{m['finding']}** (groups on {', '.join(code(c) for c in m['columns'][:6])}): {sizes_text}"
                             + (f"; {left} rows in no group" if left else "")
                             + f". Same label as the tool on {fmt(agree.get('same_label'))} of the sample rows.")
            else:
                n_flag = m["counts"].get("n_flagged", 0)
                n_scored = m["counts"].get("n_scored", 0)
                lines.append(f"- **{m['finding']}** (outliers, {m['method'].replace('_', ' ')}): {n_flag} of {n_scored} rows "
                             f"flagged ({n_flag / max(n_scored, 1):.3%}); on the sample the refitted model and the tool "
                             f"flag {agree.get('both', 0)} rows in common (Jaccard {fmt(agree.get('jaccard'))}).")
        lines.append("")
    for m in s.get("not_extended") or []:
        lines.append(f"- {m['finding']} ({m['kind']}) was not extended to every row: {escape_md(m['why'])}.")
    if s.get("not_extended"):
        lines.append("")
    return "\n".join(lines) + "\n"
