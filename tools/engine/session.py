"""The session workspace: the table, the active row selection, derived columns, per-row artifacts
and figures of one exploration. It lives inside the sandbox worker."""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from serendip.tools.engine.contracts import DerivedColumn
from serendip.tools.engine.errors import ToolInputError
from serendip.tools.engine.table import ColumnInfo, Table
from serendip.tools.engine.thresholds import Thresholds

WORKSPACE_DIRNAME = ".workspace"
ARTIFACT_NAME = re.compile(r"^R\d+_[A-Za-z0-9_-]{1,80}$")
"""What :meth:`Session.artifact_name` makes: a result id, an underscore and a sanitised stem."""


@dataclass
class Matrix:
    """Numeric features of the active rows, ready for a model.

    Attributes:
        X: The (n_rows, n_columns) float array (scaled when asked).
        rows: 0-based positions in the table of the rows in ``X``.
        columns: Names of the columns in ``X``.
        dropped_columns: Columns left out, with the reason.
        n_dropped_rows: Active rows left out for missing values.
        center: Per-column center used in scaling (zeros when unscaled).
        scale: Per-column scale used in scaling (ones when unscaled).
    """

    X: np.ndarray
    rows: np.ndarray
    columns: list[str]
    dropped_columns: dict[str, str] = field(default_factory=dict)
    n_dropped_rows: int = 0
    center: np.ndarray | None = None
    scale: np.ndarray | None = None


def safe_scale(X: np.ndarray, robust: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre and scale each column without overflow, whatever the magnitude of its finite values.

    Each column is first divided by its largest absolute value (a power of two, so exactly), then
    centred and scaled: values near the float limit (±1e307) give the same standardized values as
    modest ones instead of overflowing to inf and NaN. Columns with no spread get scale 1.

    Args:
        X: (n_rows, n_columns) finite values.
        robust: Median and IQR/1.349 (the standard deviation's robust counterpart, falling back to
            the standard deviation when the IQR is 0) instead of mean and standard deviation.

    Returns:
        The scaled array, and the per-column centre and scale in the column's own units (the scale may
        be inf for a column whose spread exceeds the float range; the scaled values are still finite).
    """
    X = np.asarray(X, dtype=float)
    if X.size == 0:
        return X.copy(), np.zeros(X.shape[1]), np.ones(X.shape[1])
    peak = np.max(np.abs(X), axis=0)
    _, exponent = np.frexp(np.where(peak > 0, peak, 1.0))
    unit = np.ldexp(1.0, np.minimum(exponent, 1023))  # a power of two near the peak: dividing is exact
    Y = X / unit
    if robust:
        c = np.median(Y, axis=0)
        q75, q25 = np.percentile(Y, [75, 25], axis=0)
        s = (q75 - q25) / 1.349
        s = np.where(s > 0, s, Y.std(axis=0))
    else:
        c = Y.mean(axis=0)
        s = Y.std(axis=0)
    s = np.where(s > 0, s, 1.0)
    Z = (Y - c) / s
    with np.errstate(over="ignore"):
        return Z, c * unit, s * unit


class Session:
    """Everything a tool may read or write during one exploration.

    Args:
        table: The loaded table.
        workdir: The run's output directory; figures go to ``workdir/figures`` and per-row artifacts
            and derived state to ``workdir/.workspace``. Tools write nowhere else.
        seed: Seed for every random choice.
        thresholds: Significance, effect and stability thresholds.
    """

    def __init__(self, table: Table, workdir: str | Path, seed: int = 0,
                 thresholds: Thresholds | None = None) -> None:
        self.table = table
        self.workdir = Path(workdir)
        self.seed = int(seed)
        self.thresholds = thresholds or Thresholds()
        self.figures_dir = self.workdir / "figures"
        self.workspace = self.workdir / WORKSPACE_DIRNAME
        self.figures_dir.mkdir(parents=True, exist_ok=True)
        (self.workspace / "artifacts").mkdir(parents=True, exist_ok=True)
        (self.workspace / "derived").mkdir(parents=True, exist_ok=True)
        self.selection: np.ndarray | None = None
        self.selection_label: str = "all rows"
        self.current_tool = ""
        self.current_id = ""
        self.result_count = 0
        self.artifact_names: list[str] = []
        self.provenance: dict[str, DerivedColumn] = {}
        self.new_derived: list[DerivedColumn] = []
        self.restore()

    # ----------------------------------------------------------------- rows and columns
    @property
    def active_rows(self) -> np.ndarray:
        """0-based table positions of the rows tools currently work on."""
        if self.selection is None:
            return np.arange(self.table.n_rows)
        return self.selection

    def rng(self, salt: int = 0) -> np.random.Generator:
        """A generator seeded by the session seed (plus ``salt`` for independent streams)."""
        return np.random.default_rng(self.seed + salt)

    def fail(self, message: str) -> ToolInputError:
        """A :class:`ToolInputError` prefixed with the current tool's name when it helps."""
        return ToolInputError(message)

    def resolve_column(self, name: str, param: str = "column", roles: Sequence[str] | None = None) -> str:
        """Check one column name, with a "did you mean" for unknown names and a role check.

        Args:
            name: The name as given by the caller.
            param: The argument name, for the message.
            roles: Allowed roles (None = any).
        """
        cols = self.table.columns
        if name not in cols:
            stripped = {c.strip().lower(): c for c in cols}
            if isinstance(name, str) and name.strip().lower() in stripped:
                name = stripped[name.strip().lower()]
            else:
                close = difflib.get_close_matches(str(name), cols, n=3, cutoff=0.5)
                hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
                shown = ", ".join(repr(c) for c in cols[:15]) + (" ..." if len(cols) > 15 else "")
                raise ToolInputError(
                    f"The '{param}' parameter of {self.current_tool or 'this tool'} names an unknown column "
                    f"{str(name)[:80]!r}.{hint} Columns include: {shown}.")
        if roles is not None and self.table.role(name) not in roles:
            allowed = [c for c in self.table.columns_with_role(*roles)][:15]
            raise ToolInputError(
                f"The '{param}' parameter of {self.current_tool or 'this tool'} needs a column of role "
                f"{' or '.join(roles)}; {name!r} is {self.table.role(name)}. Such columns: "
                f"{', '.join(repr(c) for c in allowed) or 'none'}.")
        return name

    def resolve_columns(self, names: Iterable[str] | None, param: str = "columns",
                        roles: Sequence[str] | None = ("numeric",), default_all: bool = True) -> list[str]:
        """Check a list of column names; None or empty means every column of the allowed roles."""
        if not names:
            if not default_all:
                raise ToolInputError(f"The '{param}' parameter of {self.current_tool} must name at least one column.")
            cols = self.table.columns_with_role(*roles) if roles else self.table.columns
            if not cols:
                raise ToolInputError(
                    f"{self.current_tool} needs {' or '.join(roles or ['any'])} columns and the table has none.")
            return cols
        out: list[str] = []
        for n in names:
            c = self.resolve_column(n, param=param, roles=roles)
            if c not in out:
                out.append(c)
        return out

    def frame(self, columns: Sequence[str], rows: np.ndarray | None = None) -> pd.DataFrame:
        """Values of ``columns`` for the active rows (or ``rows``), indexed by table position."""
        rows = self.active_rows if rows is None else rows
        return self.table.df.iloc[rows][list(columns)]

    def matrix(self, columns: Sequence[str], *, scaling: str = "standard", missing: str = "drop",
               min_rows: int = 3, rows: np.ndarray | None = None) -> Matrix:
        """Numeric matrix of the active rows with a declared missing-value policy and scaling.

        Constant and all-missing columns are left out (and reported); an error says what to change when
        too few rows or columns remain.

        Args:
            columns: Numeric column names (already resolved).
            scaling: 'standard' (mean/std), 'robust' (median/IQR-based scale) or 'none'.
            missing: 'drop' rows with any missing value, or 'impute' missing cells with the median.
            min_rows: Fewest usable rows for the tool.
            rows: Table positions to use instead of the active rows.
        """
        rows = self.active_rows if rows is None else rows
        tool = self.current_tool or "this tool"
        if len(rows) == 0:
            raise ToolInputError(f"{tool} got no rows: the table (or the current selection) is empty.")
        df = self.table.df.iloc[rows][list(columns)]
        X = df.to_numpy(dtype=float, na_value=np.nan)
        dropped: dict[str, str] = {}
        keep = []
        for j, c in enumerate(columns):
            col = X[:, j]
            fin = np.isfinite(col)
            if not fin.any():
                dropped[c] = "all values missing"
            elif np.max(col[fin]) == np.min(col[fin]):
                dropped[c] = "constant"
            else:
                keep.append(j)
        if not keep:
            reasons = "; ".join(f"{k}: {v}" for k, v in list(dropped.items())[:10])
            raise ToolInputError(f"{tool} has no usable numeric column ({reasons}). Choose other columns.")
        X = X[:, keep]
        names = [columns[j] for j in keep]
        n_before = len(X)
        if missing == "drop":
            ok = np.isfinite(X).all(axis=1)
            X, rows = X[ok], np.asarray(rows)[ok]
        elif missing == "impute":
            bad = ~np.isfinite(X)
            med = np.nanmedian(np.where(bad, np.nan, X), axis=0)
            X = np.where(bad, med[None, :], X)
        else:
            raise ToolInputError(f"The 'missing' parameter of {tool} must be 'drop' or 'impute'. Got {missing!r} instead.")
        if len(X) < min_rows:
            raise ToolInputError(
                f"{tool} needs at least {min_rows} rows with all of {names[:8]} present; got {len(X)} "
                f"(of {n_before}). Use fewer columns, missing='impute', or a wider selection.")
        if scaling not in ("standard", "robust", "none"):
            raise ToolInputError(f"The 'scaling' parameter of {tool} must be one of ['standard', 'robust', 'none']. Got {scaling!r} instead.")
        if scaling == "none":
            center, scale = np.zeros(X.shape[1]), np.ones(X.shape[1])
        else:
            X, center, scale = safe_scale(X, robust=scaling == "robust")
        return Matrix(X=np.ascontiguousarray(X), rows=np.asarray(rows), columns=names, dropped_columns=dropped,
                      n_dropped_rows=n_before - len(X), center=center, scale=scale)

    # ----------------------------------------------------------------- outputs
    def figure_path(self, stem: str) -> tuple[Path, str]:
        """Where to write a figure: (absolute path, path relative to the run directory)."""
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in stem)[:60]
        name = f"{self.current_id or 'R0'}_{safe}.png"
        return self.figures_dir / name, f"figures/{name}"

    def artifact_name(self, stem: str) -> str:
        """A unique per-row artifact name tied to the current result (``R4_cluster``)."""
        safe = "".join(ch if ch.isascii() and ch.isalnum() or ch in "-_" else "_" for ch in stem)[:60] or "x"
        return f"{self.current_id or 'R0'}_{safe}"

    def save_artifact(self, name: str, values: np.ndarray, rows: np.ndarray | None = None,
                      fill: float | int = np.nan) -> str:
        """Keep a per-row array (one value per table row) in the workspace and return its name.

        Args:
            name: Artifact name (a column of rows.csv); see :meth:`artifact_name`.
            values: Values for ``rows`` (or for every table row when ``rows`` is None).
            rows: Table positions the values belong to.
            fill: Value for rows not covered (NaN for floats; -1 for labels; 0 for flags).
        """
        values = np.asarray(values)
        if rows is not None:
            full = np.full(self.table.n_rows, fill, dtype=np.result_type(values.dtype, np.asarray(fill).dtype))
            full[np.asarray(rows)] = values
            values = full
        if len(values) != self.table.n_rows:
            raise ValueError(f"artifact {name!r} has {len(values)} values for {self.table.n_rows} rows")
        np.save(self.workspace / "artifacts" / f"{name}.npy", values, allow_pickle=False)
        if name not in self.artifact_names:
            self.artifact_names.append(name)
        return name

    def load_artifact(self, name: str) -> np.ndarray:
        """A per-row array this session saved (by name only: never a path).

        Raises:
            ToolInputError: ``name`` is not one of this session's artifacts (names are like ``R4_umap1``).
        """
        text = str(name)
        if text not in self.artifact_names or not ARTIFACT_NAME.match(text):
            known = ", ".join(self.artifact_names[-10:]) or "none yet"
            raise ToolInputError(f"No artifact named {text[:80]!r} in this session. Known artifacts: {known}.")
        path = self.workspace / "artifacts" / f"{text}.npy"
        if not path.is_file():
            raise ToolInputError(f"The artifact {text!r} is no longer in the workspace. Known artifacts: "
                                 f"{', '.join(self.artifact_names[-10:])}.")
        return np.load(path, allow_pickle=False)

    # ----------------------------------------------------------------- derived state (survives restarts)
    def add_derived_column(self, name: str, values: np.ndarray, description: str, operation: str = "derived",
                           inputs: Sequence[str] = (), controls: Sequence[str] = ()) -> None:
        """Add a derived numeric column (e.g. residuals) and persist it, with its provenance, for worker restarts.

        Args:
            name: The new column.
            values: One value per table row.
            description: One line for people.
            operation: What made it (e.g. 'log10', 'residual'); see :class:`~serendip.tools.engine.contracts.DerivedColumn`.
            inputs: The columns it was computed from.
            controls: The columns it controls for.
        """
        record = self._provenance(name, description, operation, list(inputs), list(controls))
        self.provenance[name] = record
        self.new_derived.append(record)
        self.table.add_column(name, np.asarray(values, dtype=float),
                              ColumnInfo(name=name, role="numeric", derived=True, description=description))
        stem = f"{len(list((self.workspace / 'derived').glob('*.npy'))):04d}"
        np.save(self.workspace / "derived" / f"{stem}.npy", np.asarray(values, dtype=float), allow_pickle=False)
        # The state entry names its file, so a file left by a worker killed before this line is ignored.
        self._append_state({"derived": name, "description": description, "file": f"{stem}.npy",
                            "provenance": record.model_dump()})

    def _provenance(self, name: str, description: str, operation: str, inputs: list[str],
                    controls: list[str]) -> DerivedColumn:
        """The provenance of a new column, with its inputs and controls followed back to the table's columns."""
        bases, roots = [], []
        for c in inputs:
            known = self.provenance.get(c)
            for b in (known.base_columns if known else [c]):
                if b not in bases:
                    bases.append(b)
            for k in (known.controls if known else []):
                if k not in roots:
                    roots.append(k)
        for c in controls:
            known = self.provenance.get(c)
            for k in (known.base_columns if known else [c]):
                if k not in roots:
                    roots.append(k)
        return DerivedColumn(name=name, operation=operation, inputs=inputs, base_columns=bases, controls=roots,
                             description=description)

    def set_selection(self, rows: np.ndarray | None, label: str) -> None:
        """Make ``rows`` (table positions) the active rows, or all rows when None; persisted."""
        self.selection = None if rows is None else np.asarray(rows, dtype=np.int64)
        self.selection_label = label if rows is not None else "all rows"
        if rows is not None:
            np.save(self.workspace / "selection.npy", self.selection, allow_pickle=False)
        else:
            (self.workspace / "selection.npy").unlink(missing_ok=True)
        self._append_state({"selection": self.selection_label})

    def _append_state(self, entry: dict) -> None:
        state = self.workspace / "state.jsonl"
        with open(state, "ab") as fh:
            start = fh.tell()
            fh.write((json.dumps(entry) + "\n").encode("utf-8"))
            end = fh.tell()
        if getattr(self, "_state_offset", 0) == start:  # nothing new from other workers before it: skip our own line
            self._state_offset = end

    def restore(self) -> None:
        """Reload derived columns, the selection and the result counter after a worker restart."""
        self._state_offset = 0
        self.refresh()

    def refresh(self) -> None:
        """Take in the state other workers of the run wrote since this session last looked: derived columns,
        the selection, the result counter (from ``state.jsonl``, read from where it was left) and artifacts."""
        state = self.workspace / "state.jsonl"
        offset = getattr(self, "_state_offset", 0)
        if state.exists() and state.stat().st_size > offset:
            with open(state, "rb") as fh:
                fh.seek(offset)
                data = fh.read()
            complete = data[:data.rfind(b"\n") + 1]  # a line still being written is read next time
            self._state_offset = offset + len(complete)
            selection_seen = False
            for line in complete.decode("utf-8", errors="replace").splitlines():
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:  # a line torn by a killed worker
                    continue
                self._apply_state(entry)
                if "selection" in entry:
                    selection_seen, self.selection_label = True, entry["selection"]
            if selection_seen:
                sel = self.workspace / "selection.npy"
                self.selection = np.load(sel, allow_pickle=False) if sel.exists() else None
                if self.selection is None:
                    self.selection_label = "all rows"
        for path in sorted((self.workspace / "artifacts").glob("*.npy")):
            if path.stem not in self.artifact_names and ARTIFACT_NAME.match(path.stem):
                self.artifact_names.append(path.stem)

    def _apply_state(self, entry: dict) -> None:
        path = self.workspace / "derived" / str(entry.get("file", ""))
        if "derived" in entry and path.is_file():
            values = np.load(path, allow_pickle=False)
            if entry["derived"] not in self.table.info or self.table.info[entry["derived"]].derived:
                self.table.add_column(entry["derived"], values, ColumnInfo(
                    name=entry["derived"], role="numeric", derived=True, description=entry["description"]))
                if isinstance(entry.get("provenance"), dict):
                    self.provenance[entry["derived"]] = DerivedColumn.model_validate(entry["provenance"])
        if "result_count" in entry:
            self.result_count = max(self.result_count, int(entry["result_count"]))

    def next_result_id(self) -> str:
        """Give the next result id (R1, R2 ...), persisted so ids stay unique across restarts."""
        self.result_count += 1
        self._append_state({"result_count": self.result_count})
        return f"R{self.result_count}"
