"""Imported once by the forkserver that tool workers are forked from (see :mod:`serendip.tools.engine.sandbox`).

Every worker needs numpy, pandas, scipy, scikit-learn, matplotlib and the tool modules: about 4 s of
imports per worker when each starts as a fresh interpreter. The forkserver imports them once and each
worker is a fork of it. numba and UMAP are left out on purpose: their thread counts and cache directory
are read from the environment at import, which each worker sets for itself first.
"""

from serendip.tools.engine.registry import load_builtin_tools

load_builtin_tools()
