"""Inferring a column's role: numeric, categorical, identifier, flag, text or datetime."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

_ID_NAME = re.compile(r"(^|[_\W])(id|name|objid|designation|obj|source|specobjid|galaxy|target)($|[_\W])", re.I)


def infer_role(col: pd.Series, name: str) -> str:
    """Guess the role of one (limit-parsed) column.

    Args:
        col: The column's values.
        name: The column's name (an ``id``-like name makes a unique integer column an identifier).
    """
    s = col.dropna()
    n = len(s)
    if pd.api.types.is_bool_dtype(col):
        return "flag"
    if pd.api.types.is_datetime64_any_dtype(col):
        return "datetime"
    if pd.api.types.is_numeric_dtype(col):
        if n == 0:
            return "numeric"
        uniq = s.nunique()
        if uniq <= 2 and set(np.unique(s.to_numpy())) <= {0, 1}:
            return "flag"
        is_int = np.all(np.mod(s.to_numpy(dtype=float), 1) == 0)
        if is_int and uniq == n and n >= 20 and _ID_NAME.search(name or ""):
            return "identifier"
        return "numeric"
    # Object / string columns.
    if n == 0:
        return "text"
    coerced = pd.to_numeric(s, errors="coerce")
    if coerced.notna().mean() >= 0.95 and coerced.notna().sum() > 0:
        return "numeric"
    lowered = s.astype(str).str.strip().str.lower()
    if set(lowered.unique()) <= {"true", "false", "t", "f", "yes", "no", "y", "n"}:
        return "flag"
    uniq = s.nunique()
    if uniq == n and n >= 20:
        return "identifier"
    if uniq <= max(20, int(0.05 * n)) or (n and uniq / n <= 0.5 and uniq <= 200):
        return "categorical"
    if s.astype(str).str.len().mean() < 40:
        try:
            parsed = pd.to_datetime(s.head(50), errors="coerce", format="mixed")
            if parsed.notna().mean() >= 0.9:
                return "datetime"
        except (ValueError, TypeError):
            pass
    return "text"
