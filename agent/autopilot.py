"""The autopilot: a deterministic planner that runs the data-driven method without a model.

load and profile → data quality → correlations with FDR control → PCA; when one component dominates
(a known trend such as luminosity or distance), residualize it and look again → UMAP and clustering with
stability → outliers, including off-relation outliers of the strongest relations → ranked report.
"""

from __future__ import annotations

import re

import numpy as np

from serendip.agent.budget import Budget, Stop
from serendip.agent import derivations as dv
from serendip.agent.goal import GoalIntent, parse_goal
from serendip.agent.headline_figures import draw_headline_figures
from serendip.agent.knowledge.autopilot_step import control_known_relations
from serendip.agent.outcome import RunOutcome
from serendip.tools.engine.contracts import DerivingSummary, EmbeddingSummary, PcaSummary, read_summary
from serendip.tools.loading.roles import looks_like_id_name
from serendip.tools.engine.result import ToolResult

MAX_ANALYSIS_COLUMNS = 40
UMAP_MIN_ROWS = 200
SUBSPACE_MIN_ROWS = 200
NOT_PHYSICS = {"identifier": "identifiers", "bookkeeping": "survey bookkeeping (how the data were taken)",
               "time": "times and epochs", "angle": "angles and sky coordinates"}
"""Column kinds kept out of the analysis of physical quantities, and how the report names them."""


class Autopilot:
    """Plans and runs an exploration through the same tools an LLM would call.

    Args:
        dispatcher: Sends tool calls to the sandbox and records them.
        dataset: The table overview (columns with roles, sizes, load warnings).
        cfg: The run configuration (goal, limits).
        progress: Progress display.
    """

    def __init__(self, dispatcher, dataset: dict, cfg, progress) -> None:
        self.d = dispatcher
        self.dataset = dataset
        self.cfg = cfg
        self.progress = progress
        self.outcome = RunOutcome(status="completed")
        self.budget = Budget(max_steps=cfg.max_steps, max_tokens=cfg.max_tokens, time_limit=cfg.time_limit)
        self.roles = {c["name"]: c["role"] for c in dataset.get("columns", [])}
        self.kinds = {c["name"]: c.get("kind") for c in dataset.get("columns", [])}
        self.photometric: list[str] = []
        self.profile_info: dict[str, dict] = {}
        self.long_colour: str | None = None
        self.intent: GoalIntent = parse_goal(cfg.goal or "", list(self.roles))
        self.log_names: dict[str, str] = {}
        self.missing_fraction: dict[str, float] = {}
        self.missing = "drop"
        self.ahead: list[Ahead] = []

    # ------------------------------------------------------------------ plumbing
    @property
    def steps(self) -> int:
        """Planner steps taken (tool calls made)."""
        return self.budget.steps

    def call(self, tool: str, **arguments) -> ToolResult:
        """One planner step the plan waits for: it runs before the steps submitted ahead that have not
        started, and its result comes back as soon as it is ready (steps before it are recorded later, in
        order: the plan reads only the results it is given, never the ledger, so the report is the same)."""
        return self._step(tool, arguments, urgent=True).value()

    def submit(self, tool: str, **arguments) -> Ahead:
        """A planner step whose result the plan does not read at once: it runs on a free tool worker while
        the next steps start (see :mod:`~serendip.tools.engine.pool`); only for calls whose inputs exist
        already. Results are recorded in step order, so the report is the same with one worker or several."""
        return self._step(tool, arguments, urgent=False)

    def flush(self) -> None:
        """Wait for every step so far and record them (before reading the ledger)."""
        if self.ahead:
            self.ahead[-1].result()

    def _step(self, tool: str, arguments: dict, urgent: bool) -> Ahead:
        self.budget.check()
        self.budget.steps += 1
        args = {k: v for k, v in arguments.items() if v is not None}
        self.progress.step(f"{self.d.next_id()} {tool}")
        ahead = Ahead(self.d.submit(tool, args, step=self.budget.steps, urgent=urgent), tool, self.progress,
                      self.ahead)
        self.ahead.append(ahead)
        return ahead

    def note(self, text: str) -> None:
        """Something the planner understood or decided (shown in the report)."""
        self.outcome.notes.append(text)

    def wants(self, interest: str) -> bool:
        """Whether the goal asks about ``interest`` (everything when it names none)."""
        return not self.intent.interests or interest in self.intent.interests

    # ------------------------------------------------------------------ the plan
    def run(self) -> RunOutcome:
        """Run the whole plan; a limit ends it early with the matching exit status."""
        goal = self.cfg.goal or ""
        self.note(f"Goal read as: {self.intent.describe()}." if goal else
                  "No goal given: an open exploration of trends, groups and outliers.")
        try:
            self.plan()
        except Stop as stop:
            self.outcome.status = stop.status
            self.outcome.reason = stop.reason
        self.flush()  # record the steps still running
        self.outcome.steps = self.budget.steps
        return self.outcome

    def plan(self) -> None:
        profile = self.call("describe", page_size=50)
        columns, discrete = self.analysis_columns(profile)
        if not columns:
            self.note("No numeric column is usable for analysis; only the profile was made.")
            return
        self.note(f"Analysed {len(columns)} numeric columns: {', '.join(columns[:30])}"
                  + (" …" if len(columns) > 30 else "") + ".")
        if discrete:
            self.note(f"Columns with few distinct values ({', '.join(discrete[:10])}) enter the correlations but "
                      "not the maps, groupings and outlier searches.")
        columns = self.log_transform(columns)
        columns = self.derive_quantities(columns)
        continuous = self.multivariate_columns([c for c in columns if c not in set(discrete)])

        raw = list(continuous)
        offsets = []
        for by in self.split_columns():
            res = self.call("compare", by=by, columns=continuous[:MAX_ANALYSIS_COLUMNS])
            found = level_offsets(res)
            if found:
                offsets.append((by, found, res.id))
        # A split by how the data were observed (field, instrument...) is a systematic: correct it before
        # measuring trends. Other single-level offsets may be physics: they are only removed for a second look.
        for by, found, rid in offsets:
            if any(obs for _, _, obs in found.values()):
                columns, continuous = self.remove_offsets(by, found, rid, columns, continuous)

        focus = [self.log_names.get(c, c) for c in self.intent.focus if self.log_names.get(c, c) in columns]
        if len(focus) >= 2:
            self.submit("correlate", columns=focus)
        elif len(focus) == 1 and len(columns) >= 2:
            self.call("correlate", columns=columns, target=focus[0])
        if len(columns) >= 2:
            control_known_relations(self, self.call("correlate", columns=columns), columns)

        groups = self.wants("groups") and self.n_rows >= 20
        working = continuous
        for by, found, rid in offsets:
            if not any(obs for _, _, obs in found.values()):
                _, working = self.remove_offsets(by, found, rid, working, working)
        if self.intent.control:
            controls = [self.log_names.get(c, c) for c in self.intent.control]
            working = self.control_for(controls, working, reason="the goal asks to control for them")

        residuals: list[str] = []
        if len(working) >= 2:
            pca = self.call("pca", columns=working, missing=self.missing)
            driver = dominant_driver(pca)
            if driver and driver in working and len(working) >= 3 and not self.intent.control:
                others = [c for c in working if c != driver]
                residuals = self.control_for([driver], others,
                                             reason=f"PCA's first component dominates and follows {driver} "
                                                    f"(a dominant, likely known trend)")
                if residuals and residuals != others:
                    self.call("correlate", columns=residuals)
                    self.call("pca", columns=residuals, missing=self.missing)
                else:
                    residuals = []

        second_look = residuals or working
        # The map first: with the density groups on it, it is the longest chain of steps, so it starts before
        # the first look's mixtures and takes one tool worker while they share the other.
        embed = groups and bool(working) and self.n_rows >= UMAP_MIN_ROWS and len(second_look) >= 3
        pending_map = self._step("umap", {"columns": second_look}, urgent=True) if embed else None
        # Astronomers look for kinds of object in colour space: when the table's photometry was recognised, a
        # second map of the colours (and one magnitude) alone, so that columns unrelated to the photometry
        # (sky position, fibre numbers an anonymised table cannot name) do not shape its density groups.
        photometric = self.photometric
        photo_map = (self._step("umap", {"columns": photometric}, urgent=False)
                     if embed and len(photometric) >= 3 and set(photometric) != set(second_look) else None)
        if groups and raw:
            self.note("Groups were looked for twice: first in the columns as measured, then after controlling "
                      "for systematics and dominant trends.")
            self.search_subspaces(raw)
        if groups and working:
            self.look_again_for_groups(second_look, changed=second_look != raw, pending_map=pending_map)
            if photo_map is not None:
                self.density_groups_on_map(photometric, photo_map)
        if self.wants("outliers") and working and self.n_rows >= 20:
            self.find_outliers(columns=continuous, working=residuals or working)
        draw_headline_figures(self)  # issue 17: a figure for every headline

    def remove_offsets(self, by: str, found: dict, rid: str, columns: list[str],
                       continuous: list[str]) -> tuple[list[str], list[str]]:
        """Residualize the offset columns on ``by`` and swap them into both column lists."""
        targets = [c for c in found if c in continuous]
        if not targets:
            return columns, continuous
        levels = ", ".join(sorted({lv for lv, _, _ in found.values()}))
        observational = any(obs for _, _, obs in found.values())
        why = ("a likely calibration systematic" if observational else
               "removed for a second look beneath it (it may be physics: the first look kept it)")
        fixed = self.control_for([by], targets, reason=f"{by} = {levels} alone is offset in "
                                 f"{', '.join(targets)}, {why} (evidence {rid})")
        if fixed == targets:
            return columns, continuous
        swap = dict(zip(targets, fixed))
        return [swap.get(c, c) for c in columns], [swap.get(c, c) for c in continuous]

    # ------------------------------------------------------------------ steps
    @property
    def n_rows(self) -> int:
        return int(self.dataset.get("n_rows") or 0)

    def analysis_columns(self, profile: ToolResult) -> tuple[list[str], list[str]]:
        """Numeric columns worth analysing (focus first), and those among them with few distinct values."""
        numeric = [c for c, r in self.roles.items() if r == "numeric"]
        info = {c["name"]: c for c in iter_profile_columns(profile_data(profile)) if c.get("name")}
        self.profile_info = info
        self.missing_fraction = {n: float(p.get("missing") or 0.0) for n, p in info.items()}
        bad, discrete = [], []
        errors = [c for c in numeric if UNCERTAINTY.search(c) and c not in self.intent.focus]
        if errors:
            self.note(f"Left out as measurement uncertainties: {', '.join(errors[:15])}"
                      + (" …" if len(errors) > 15 else "") + ".")
        numeric = [c for c in numeric if c not in errors]
        copies = {c: info[c]["copy_of"] for c in numeric
                  if info.get(c, {}).get("copy_of") in numeric and c not in self.intent.focus}
        if copies:  # the same values up to units or a log: its ρ = ±1 with the original is not a finding
            self.note("Left out as exact copies of another column (the same values up to a monotonic transform): "
                      + ", ".join(f"{c} (of {o})" for c, o in list(copies.items())[:15])
                      + (" …" if len(copies) > 15 else "") + ".")
        numeric = [c for c in numeric if c not in copies]
        numeric = self.drop_non_physics(numeric)
        for c in numeric:
            p = info.get(c, {})
            warnings = " ".join(str(w) for w in p.get("warnings", []) or [])
            id_like = "id-like" in warnings.lower() and looks_like_id_name(c)
            if (p.get("missing") or 0) > 0.5 or "constant" in warnings or "all values missing" in warnings or id_like:
                bad.append(c)
            elif p.get("n_unique") is not None and p["n_unique"] <= 10:
                discrete.append(c)
        keep = [c for c in numeric if c not in self.intent.ignore and c not in bad]
        if self.intent.ignore:
            self.note(f"Left out as asked: {', '.join(self.intent.ignore)}.")
        if bad:
            self.note(f"Left out as unusable (mostly missing, constant or ID-like): {', '.join(bad[:20])}"
                      + (" …" if len(bad) > 20 else "") + ".")
        focus = [c for c in self.intent.focus if c in keep]
        rest = [c for c in keep if c not in focus]
        if len(focus) + len(rest) > MAX_ANALYSIS_COLUMNS:
            rest.sort(key=lambda c: (info.get(c, {}).get("missing") or 0))
            rest = rest[: max(0, MAX_ANALYSIS_COLUMNS - len(focus))]
            self.note(f"The table is wide: the {MAX_ANALYSIS_COLUMNS} most complete usable numeric columns "
                      "were analysed.")
        cols = focus + [c for c in keep if c in rest]
        return cols, [c for c in discrete if c in cols]

    def drop_non_physics(self, numeric: list[str]) -> list[str]:
        """Leave out identifiers, bookkeeping, times and (unless the goal asks) sky coordinates, saying so."""
        keep = []
        left: dict[str, list[str]] = {}
        for c in numeric:
            kind = self.kinds.get(c)
            wanted = c in self.intent.focus or (kind == "angle" and self.intent.spatial)
            if kind in NOT_PHYSICS and not wanted:
                left.setdefault(kind, []).append(c)
            else:
                keep.append(c)
        for kind, cols in left.items():
            self.note(f"Understood {', '.join(cols[:12])}" + (" …" if len(cols) > 12 else "")
                      + f" as {NOT_PHYSICS[kind]}: not analysed as physical quantities"
                      + (" (kept for a spatial search only when the goal asks about positions)" if kind == "angle"
                         else "") + ".")
        mags = [c for c in keep if self.kinds.get(c) == "magnitude"]
        if len(mags) >= 2:
            self.note(f"Understood {', '.join(mags[:10])} as photometry (magnitudes): their mutual correlations are "
                      "expected; colours (differences of bands) are the informative quantities.")
        return keep

    def derive_quantities(self, columns: list[str]) -> list[str]:
        """Colours of adjacent bands, absolute magnitude and line ratios where the table's conventions call
        for them; magnitudes other than the reference one are then analysed through the colours."""
        info = [{"name": c["name"], "unit": c.get("unit"), "kind": self.kinds.get(c["name"])}
                for c in self.dataset.get("columns", []) if c["name"] in set(columns) or
                (c.get("role") == "numeric" and self.kinds.get(c["name"]) is None)]
        bands = dv.magnitude_bands([i for i in info if i["name"] in set(columns)])
        by_content = False
        if len(bands) < 2:
            found = self.photometry_by_content(columns)
            if found:
                bands, by_content = found, True
        plans = dv.plan_colours(bands, info) if len(bands) >= 2 else []
        reference = dv.reference_magnitude(bands) if bands and not by_content else (
            list(bands.values())[len(bands) // 2] if bands else None)
        if reference is None:
            mags = [c for c in columns if self.kinds.get(c) == "magnitude"]
            reference = mags[0] if len(mags) == 1 else None
        absolute = dv.plan_absolute_magnitude(reference, info)
        if absolute:
            plans.append(absolute)
        plans += dv.plan_line_ratios(info)
        made: dict[str, str] = {}
        for plan in plans:
            res = self.call("derive", expression=plan.expression, name=plan.name)
            if res.ok:
                made[plan.name] = plan.kind
                self.note(f"Derived {plan.name} = {plan.expression}: {plan.reason} (evidence {res.id}).")
        if not made:
            return columns
        colours = [n for n, k in made.items() if k == "colour"]
        long = [p.name for p in plans if p.kind == "colour" and p.reason.startswith("long-baseline")
                and p.name in made]
        if long:
            # The long-baseline colour is the sum of adjacent ones: it is searched for populations on its own,
            # but kept out of correlations, maps and joint groupings, where it only repeats its parts.
            self.long_colour = long[0]
            colours = [c for c in colours if c != self.long_colour]
            self.note(f"{self.long_colour} (a sum of adjacent colours) is used on its own, to look for colour "
                      "populations, and not correlated with the colours it is made of.")
        self.photometric = colours[:]
        replaced = set()
        if colours:
            replaced |= {c for c in bands.values() if c != reference}
        keep_ref = reference
        if absolute and absolute.name in made:
            replaced.add(reference)
            keep_ref = absolute.name
        if keep_ref:
            self.photometric.append(keep_ref)
        existing = [c for c in columns if dv.is_colour_name(c) or self.kinds.get(c) == "magnitude" and c not in replaced]
        self.photometric += [c for c in existing if c not in self.photometric and c != reference]
        self.photometric = list(dict.fromkeys(self.photometric))  # once, here: the group searches read it as is
        if replaced:
            self.note(f"Magnitudes {', '.join(sorted(replaced))} are analysed through the derived colours"
                      + (f" and {keep_ref}" if keep_ref else "") + " rather than on their own.")
        out = [c for c in columns if c not in replaced]
        return out + [n for n in made if n not in out and n != self.long_colour]

    def photometry_by_content(self, columns: list[str]) -> dict[str, str]:
        """Magnitudes recognised from their values when their names say nothing: three or more columns on
        the magnitude scale (medians 8–30, spreads of tenths to a few magnitudes) that form a chain of
        strong positive correlations from the faintest median to the brightest (see
        :func:`~serendip.agent.derivations.photometric_chain`), which for stars and galaxies runs from the
        blue bands to the red ones.
        """
        candidates = []
        for c in columns:
            p = self.profile_info.get(c) or {}
            med, iqr = p.get("median"), p.get("iqr")
            if self.kinds.get(c) is None and med is not None and iqr is not None and 8 <= med <= 30 \
                    and 0.2 <= iqr <= 5:
                candidates.append(c)
        candidates = candidates[:12]
        if len(candidates) < 3:
            return {}
        res = self.call("correlate", columns=candidates)
        if not res.ok:
            return {}
        pairs = (res.details or {}).get("significant_pairs") or [
            [p.get("x"), p.get("y"), p.get("effect")] for p in res.summary.get("top_pairs") or []]
        rho = {frozenset((p[0], p[1])): float(p[2]) for p in pairs if p[2] is not None}
        medians = {c: float(self.profile_info[c]["median"]) for c in candidates}
        ordered = dv.photometric_chain(medians, rho)
        if not ordered:
            return {}
        self.note(f"Understood {', '.join(ordered)} as magnitudes in several bands from their values (magnitude "
                  f"scale, each correlating strongly with the next; evidence {res.id}); ordered from faintest to "
                  "brightest median, taken as blue to red.")
        for c in ordered:
            self.kinds[c] = "magnitude"
        return {f"band{i + 1}": c for i, c in enumerate(ordered)}

    def search_subspaces(self, columns: list[str]) -> None:
        """Groups in the columns as measured: clumps in column pairs; mixtures and k-means in all columns; then
        mixtures in the columns that carry structure: the informative subset, the photometric space (colours
        and one magnitude) and the long-baseline colour alone."""
        res = None
        if self.n_rows >= SUBSPACE_MIN_ROWS and len(columns) >= 2:
            res = self.call("subspace", columns=columns)  # quick, and the later mixtures read it
        self.submit("cluster", columns=columns, method="gmm", missing=self.missing)
        if len(columns) >= 2:
            self.submit("cluster", columns=columns, method="kmeans", missing=self.missing)
        if res is not None:
            informative = list((res.details or {}).get("informative_columns") or
                               res.summary.get("informative_columns") or []) if res.ok else []
            unrelated = [c for c in columns if c not in informative]
            if res.ok and unrelated and len(informative) >= 2:
                self.note(f"Columns that depend on no other column were left out of the second group search: "
                          f"{', '.join(unrelated[:15])}" + (" …" if len(unrelated) > 15 else "") + f" (evidence {res.id}).")
                self.submit("cluster", columns=informative, method="gmm", missing=self.missing)
        photometric = self.photometric
        if len(photometric) >= 2 and set(photometric) != set(columns):
            self.submit("cluster", columns=photometric, method="gmm", missing=self.missing)
        if self.long_colour:
            self.submit("cluster", columns=[self.long_colour], method="gmm", k_max=4, missing=self.missing)

    def log_transform(self, columns: list[str]) -> list[str]:
        """Replace positive heavy-tailed columns by their log10 (the transform tool decides which)."""
        res = self.call("transform", columns=columns, kind="auto")
        if not res.ok:
            return columns
        mapping = read_summary(DerivingSummary, {**res.summary, **(res.details or {})}).mapping
        self.log_names = dict(mapping)
        if mapping:
            self.note(f"Positive heavy-tailed columns analysed as log10: {', '.join(mapping)}.")
        return [mapping.get(c, c) for c in columns]

    def multivariate_columns(self, columns: list[str]) -> list[str]:
        """Columns for PCA, maps, groupings and outliers, and the missing-value policy they need.

        Columns missing in more than 30% of rows are left out of these (they stay in the correlations,
        which use pairwise-complete rows); when the rest still leaves too few complete rows, missing
        cells are imputed with the median and the report says so.
        """
        miss = {c: self.missing_fraction.get(self.source_name(c), 0.0) for c in columns}
        patchy = [c for c in columns if miss[c] > 0.3]
        kept = [c for c in columns if c not in patchy]
        if len(kept) < 2:
            kept, patchy = columns, []
        if patchy:
            self.note(f"Left out of PCA, maps, groupings and outlier searches as mostly incomplete (>30% "
                      f"missing): {', '.join(patchy[:15])}" + (" …" if len(patchy) > 15 else "") + ".")
        # An estimate (columns taken as missing independently) used only to choose the policy, never reported.
        complete = float(np.prod([1 - miss[c] for c in kept])) if kept else 1.0
        if complete < 0.7:
            self.missing = "impute"
            self.note("Missing values are spread over the analysed columns (see the profile), so too few rows "
                      "would be complete: missing cells were imputed with column medians for PCA, maps, "
                      "groupings and outlier searches.")
        return kept

    def source_name(self, column: str) -> str:
        """The table column a transformed column came from."""
        for src, new in self.log_names.items():
            if new == column:
                return src
        return column

    def split_columns(self) -> list[str]:
        """Categorical columns that may split the table by how it was observed (at most three)."""
        cats = [c for c, r in self.roles.items() if r in ("categorical", "flag") and c not in self.intent.ignore]
        return cats[:3]

    def control_for(self, controls: list[str], columns: list[str], reason: str) -> list[str]:
        """Residualize ``columns`` on ``controls``; return the residual columns (or the inputs on failure)."""
        targets = [c for c in columns if c not in controls]
        if not targets:
            return columns
        res = self.call("residualize", y=targets, x=list(controls))
        if not res.ok:
            self.note(f"Could not control for {', '.join(controls)}: {res.error}")
            return columns
        new = read_summary(DerivingSummary, res.summary).new_columns
        self.outcome.controlled.append(f"{', '.join(controls)}: {reason}; {len(new)} columns replaced by their "
                                       f"residuals (evidence {res.id}).")
        return list(new)

    def look_again_for_groups(self, columns: list[str], changed: bool, pending_map: "Ahead | None") -> None:
        """Groups after the controls: a mixture on the controlled columns, and density groups on the UMAP map
        (``pending_map``, submitted earlier for larger tables)."""
        if changed:
            self.submit("cluster", columns=columns, method="gmm", missing=self.missing)
        if pending_map is not None:
            self.density_groups_on_map(columns, pending_map)

    def density_groups_on_map(self, columns: list[str], pending_map: "Ahead") -> None:
        """HDBSCAN's density groups on a UMAP map of ``columns`` once the map is made."""
        emb = pending_map.value()
        name = embedding_name(emb)
        if emb.ok and name:
            # Urgent: ahead of the mixtures still queued, so the map's chain does not wait behind them.
            self._step("cluster", {"columns": columns, "method": "hdbscan", "space": "umap",
                                   "embedding": name}, urgent=True)

    def find_outliers(self, columns: list[str], working: list[str]) -> None:
        """Global outliers, then rows off the strongest relations."""
        self.submit("outliers", columns=working, method="isolation_forest", missing=self.missing)
        if self.n_rows <= 5000 and 2 <= len(working) <= 20:
            self.submit("outliers", columns=working, method="mahalanobis", missing=self.missing)
        if len(columns) >= 2:
            self.submit("outliers", columns=columns, method="off_relation")


class Ahead:
    """A submitted planner step: ``result()`` waits for it and records it; progress lines come in step order.

    Args:
        pending: The dispatcher's handle of the call.
        tool: The tool's name.
        progress: Progress display.
        steps: Every step of the plan so far, this one last (shared).
    """

    def __init__(self, pending, tool: str, progress, steps: list["Ahead"]) -> None:
        self.pending = pending
        self.tool = tool
        self.progress = progress
        self.steps = steps
        self.logged = False

    def result(self) -> ToolResult:
        """The step's result (waiting for it and for every step before it)."""
        result = self.pending.result()
        self._log_recorded()
        return result

    def value(self) -> ToolResult:
        """The step's result as soon as it is ready (earlier steps may still run; see Pending.own_result)."""
        result = self.pending.own_result()
        self._log_recorded()
        return result

    def _log_recorded(self) -> None:
        for step in self.steps:
            if step.logged:
                continue
            if not step.pending.recorded:
                break
            step.logged = True
            res = step.pending.value
            status = "ok" if res.ok else f"error: {res.error}"
            self.progress.done(f"{res.id} {step.tool} ({res.elapsed:.1f} s) {status[:120]}")


# ---------------------------------------------------------------------- reading tool summaries
def profile_data(profile: ToolResult) -> dict:
    """The describe result's full per-column data (details when present, else the bounded summary)."""
    if not profile.ok:
        return {}
    return profile.details if profile.details.get("columns") else profile.summary


def iter_profile_columns(summary: dict):
    cols = summary.get("columns")
    if isinstance(cols, dict):
        for name, v in cols.items():
            if isinstance(v, dict):
                yield {"name": name, **v}
    elif isinstance(cols, list):
        for v in cols:
            if isinstance(v, dict):
                yield v


UNCERTAINTY = re.compile(r"(_unc|_err|_error|_sigma_err|_uncertainty|_e)$|^(e_|err_|unc_)|_(lo|hi)?err(hi|lo|or)?$|"
                         r"(?<=[a-z0-9])(Err|Error|ERR|ERROR)$", re.I)
"""Names of columns that hold a measurement's uncertainty rather than a property of the object."""

KNOWN_DRIVERS = re.compile(r"mass|mstar|lum|mag|dist|size|radius|flux|bright|velocity|sigma|redshift|\bz\b", re.I)
"""Names of quantities that usually carry a table's dominant, well-known trend."""


def level_offsets(compare: ToolResult) -> dict[str, tuple[str, float, bool]]:
    """Columns that ``compare`` found offset in one level alone: {column: (level, shift, observational)}.

    ``observational`` is True when the split looks like one of how the data were taken (its finding is
    marked as a systematic).
    """
    out: dict[str, tuple[str, float, bool]] = {}
    if not compare.ok:
        return out
    for f in compare.findings:
        s = f.get("stats") or {}
        if f.get("kind") == "data_quality" and s.get("offsets"):
            for col, shift in s["offsets"].items():
                out[col] = (str(s.get("level")), float(shift), f.get("novelty") == "systematic")
    return out


def dominant_driver(pca: ToolResult) -> str | None:
    """The column behind a dominant first component, when PCA flags one.

    Among the columns that follow the first component almost as closely as the best one, a column named
    like a usual driver (mass, luminosity, distance, size) is preferred: controlling for it is the
    interpretable choice.
    """
    if not pca.ok:
        return None
    s = read_summary(PcaSummary, pca.summary)
    if s.dominant is None:
        return None
    best = s.dominant.driver
    loadings = s.components[0].top_loadings if s.components else {}
    if best in loadings:
        top = abs(loadings[best])
        close = [c for c, v in loadings.items() if abs(v) >= 0.9 * top]
        named = [c for c in close if KNOWN_DRIVERS.search(c)]
        if named and not KNOWN_DRIVERS.search(best):
            return named[0]
    return best


def embedding_name(result: ToolResult) -> str | None:
    """The artifact stem of a UMAP embedding (``R5_umap`` for R5_umap1 / R5_umap2)."""
    if not result.ok:
        return None
    s = read_summary(EmbeddingSummary, result.summary)
    if s.embedding:
        return s.embedding
    arts = [a for a in result.artifacts if a.endswith("1")]
    return arts[0][:-1] if arts else None
