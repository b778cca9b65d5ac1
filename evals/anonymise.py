"""Anonymised case variants: columns renamed c1…cN and rows shuffled (seeded), with the truth remapped.

An explorer that leans on what column names mean (or on row order) does worse on the anonymised
variant; one that reads the data does the same. The truth follows the table: the row permutation is
applied to group labels and outlier rows, and column names are mapped in trends, data-quality items,
negative controls, hypotheses and the goal, so the scorer checks exactly the same things.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from serendip.evals.truth import Truth, rename_in_text


def anonymous_names(columns: list[str]) -> dict[str, str]:
    """``{column: 'c<position>'}`` for the table's columns in order (1-based)."""
    return {c: f"c{i + 1}" for i, c in enumerate(columns)}


def row_permutation(n_rows: int, seed: int) -> np.ndarray:
    """The seeded shuffle: new row i is old row ``permutation[i]``."""
    return np.random.default_rng([seed, 0xA404]).permutation(n_rows)


def anonymise(frame: pd.DataFrame, truth: Truth, goal: str = "", seed: int = 0) -> tuple[pd.DataFrame, Truth, str]:
    """Rename the columns to c1…cN, shuffle the rows, and remap the truth and the goal to match.

    Args:
        frame: The raw table (its columns in the order of ``truth.columns``).
        truth: The truth for ``frame``.
        goal: The goal text (column names in it are renamed too).
        seed: Seed of the row shuffle.

    Returns:
        The anonymised table, its truth and its goal.
    """
    if frame.shape[1] != len(truth.columns) or len(frame) != truth.n_rows:
        raise ValueError(f"the truth describes {truth.n_rows} rows x {len(truth.columns)} columns, "
                         f"the table has {frame.shape[0]} x {frame.shape[1]}")
    names = anonymous_names(truth.columns)
    perm = row_permutation(len(frame), seed)
    out = frame.iloc[perm].reset_index(drop=True)
    out.columns = [names[c] for c in truth.columns]
    return out, truth.remapped(names, perm, variant="anonymised"), rename_in_text(goal, names)
