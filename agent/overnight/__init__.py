"""Overnight exploration: many tables, goals and strategies, unattended and resumable, ranked in the morning.

plan (what to run) → runs (one ordinary exploration per table × goal × strategy, each in its own folder)
→ executor (parallel worker processes or a Dask cluster, budgets, hard kills) → followup (each top
candidate re-tested through the same tools) → digest (index.html / index.md / summary.md).
"""
