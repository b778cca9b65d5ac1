"""From a raw DataFrame to a :class:`Table`: unique names, limits, sentinels, infinities and roles."""

from __future__ import annotations

import numpy as np
import pandas as pd

from serendip.tools.loading.limits import parse_limits
from serendip.tools.loading.names import make_unique_names
from serendip.tools.loading.roles import infer_role
from serendip.tools.loading.sentinels import mask_sentinels
from serendip.tools.table import ColumnInfo, Table


def prepare_frame(df: pd.DataFrame, *, clean: bool = True,
                  units: dict[str, str] | None = None,
                  descriptions: dict[str, str] | None = None) -> Table:
    """Clean a raw frame in place and wrap it in a :class:`Table`.

    Args:
        df: The raw frame (owned by the caller's copy; it is modified).
        clean: Parse limits and mask sentinels (True) or only infer roles (False).
        units: Unit strings by original column name.
        descriptions: Column descriptions by original column name.
    """
    units = units or {}
    descriptions = descriptions or {}
    warnings: list[str] = []
    original = [c for c in df.columns]
    names, renamed = make_unique_names(original)
    warnings.extend(renamed)
    df.columns = names
    df.index = pd.RangeIndex(len(df))

    info: dict[str, ColumnInfo] = {}
    censored: dict[str, np.ndarray] = {}
    out = {}
    for name, orig in zip(names, original):
        col = df[name]
        ci = ColumnInfo(name=name, original_name=str(orig) if str(orig) != name else None,
                        unit=units.get(orig) or None, description=descriptions.get(orig) or None)
        if clean:
            col, flags, note = parse_limits(col)
            if flags is not None:
                censored[name] = flags
                ci.n_censored = int(np.count_nonzero(flags))
                ci.notes.append(note)
        role = infer_role(col, name)
        ci.role = role
        if role == "numeric":
            col = pd.to_numeric(col, errors="coerce").astype("float64")
            n_inf = int(np.isinf(col.to_numpy()).sum())
            if n_inf:
                col = col.replace([np.inf, -np.inf], np.nan)
                ci.notes.append(f"{n_inf} infinite values treated as missing")
            if clean:
                col, values, n_masked = mask_sentinels(col, censored.get(name))
                if n_masked:
                    ci.sentinel_values = values
                    ci.n_sentinel = n_masked
                    shown = ", ".join(f"{v:g}" for v in values)
                    ci.notes.append(f"{n_masked} sentinel values ({shown}) masked as missing")
                    warnings.append(f"column {name!r}: {n_masked} cells equal to {shown} treated as missing (sentinel)")
        out[name] = col
        info[name] = ci
    frame = pd.DataFrame(out, index=pd.RangeIndex(len(df)))
    return Table(df=frame, info=info, censored=censored, warnings=warnings)
