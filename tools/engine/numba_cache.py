"""numba's compiled code kept on disk across processes, and the UMAP warm-up of a tool worker.

umap-learn compiles its numba functions without ``cache=True``: measured on the 2-core target machine,
a fresh process spent 70-130 s (depending on load) compiling ``fast_knn_indices``, ``smooth_knn_dist``,
``compute_membership_strengths``, ``submatrix`` and the layout epoch before its first fit, even with a
warm numba cache directory (only pynndescent caches its code). :func:`import_umap` switches numba's
on-disk cache on for every such function before it is first compiled, so the second process loads them
from disk instead (the first fit of 2,000 rows went from 84 s to 25 s, its transform from 25 s to 8 s,
under a load average of 10).

The cache lives in the user's cache directory (``$XDG_CACHE_HOME/serendip/numba``, ``~/.cache/...`` by
default; ``SERENDIP_CACHE_DIR`` or ``NUMBA_CACHE_DIR`` override it), created on first use. numba writes
each cache file to a unique temporary name and renames it into place, so processes sharing the
directory never read a half-written file; numba checks each entry against the source file's time stamp
and the CPU, and recompiles when they differ.

:func:`start_warm_up` runs a tiny seeded UMAP fit and transform in a background thread of the worker,
so the compilation (or the loading from the cache) overlaps the first, cheap tool calls. Every UMAP use
in the process holds :data:`UMAP_LOCK`: a tool call that needs UMAP while the warm-up runs waits for it
rather than compiling the same code a second time.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import warnings
from pathlib import Path

UMAP_LOCK = threading.RLock()
"""Held by every UMAP fit/transform in this process (the warm-up included)."""
CACHED_PACKAGES = ("umap", "pynndescent")
WARM_UP_ROWS = 300
WARM_UP_MIN_ROWS = 200
"""Smaller tables get no warm-up: the autopilot embeds only tables of at least 200 rows (``UMAP_MIN_ROWS``)."""
APPROXIMATE_FROM_ROWS = 4096
"""umap-learn uses exact nearest neighbours below this many rows and pynndescent from it on. Its exact path calls
its numba metric from a Python loop over every pair (scikit-learn's pairwise_distances with a callable: ~20 s
for 3,000 rows), so the umap tool computes the same exact distances with scipy below this size and passes them
as a precomputed metric (~0.1 s; no transform is needed then: every row is fitted)."""

_warm_up_thread: threading.Thread | None = None
warm_up_seconds: float | None = None
"""How long the last warm-up took in this process (None: none finished)."""


def cache_dir() -> Path:
    """The directory numba's on-disk cache uses in Serendip's processes (not created here)."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return Path(os.environ["NUMBA_CACHE_DIR"])
    if os.environ.get("SERENDIP_CACHE_DIR"):
        return Path(os.environ["SERENDIP_CACHE_DIR"]) / "numba"
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "serendip" / "numba"


def configure() -> Path | None:
    """Point numba's cache at :func:`cache_dir` (creating it); call before numba compiles anything.

    Sets ``NUMBA_CACHE_DIR`` for numba imported later, and numba's config when it is already imported
    (numba reads it whenever it locates a cache). Returns the directory, or None when it cannot be
    created (numba then falls back to its own locations or to no cache).
    """
    path = cache_dir()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    os.environ["NUMBA_CACHE_DIR"] = str(path)
    numba = sys.modules.get("numba")
    if numba is not None:
        numba.config.CACHE_DIR = str(path)
    return path


def enable_disk_cache(packages: tuple[str, ...] = CACHED_PACKAGES) -> int:
    """Switch on numba's on-disk cache for the not yet cached jitted functions of ``packages``.

    Only functions found as module attributes are reached (all of umap-learn's); a function compiled
    before this call keeps its in-memory code. Returns how many functions were switched.
    """
    from numba.core.caching import NullCache
    from numba.core.dispatcher import Dispatcher

    switched = 0
    for name, module in list(sys.modules.items()):
        if module is None or name.split(".")[0] not in packages:
            continue
        for value in list(vars(module).values()):
            if isinstance(value, Dispatcher) and isinstance(value._cache, NullCache):
                value.enable_caching()
                switched += 1
    return switched


_imported = False


def import_umap():
    """``import umap`` with numba's on-disk cache configured and switched on for its functions, and its
    transform's starting positions vectorised (:mod:`serendip.tools.umap_transform_init`)."""
    global _imported
    with UMAP_LOCK:
        if not _imported:
            configure()
            import umap  # noqa: F401  (lazy: ~15 s)

            from serendip.tools.umap_transform_init import install

            enable_disk_cache()
            install(umap)
            _imported = True
    import umap

    return umap


def warm_up(n_rows: int, seed: int = 0) -> float:
    """Compile (or load from the cache) the code a UMAP fit and transform of ``n_rows`` rows runs.

    A table of at least :data:`APPROXIMATE_FROM_ROWS` rows is fitted on a sample (the umap tool's default size)
    and the other rows transformed, with scikit-learn's exact neighbours or pynndescent's
    (:mod:`serendip.tools.umap_neighbours`); a smaller one with precomputed distances: the warm-up takes the
    same branch on :data:`WARM_UP_ROWS` random rows (for a table of up to 20 columns). Returns the seconds taken.
    """
    import numpy as np

    started = time.monotonic()
    with UMAP_LOCK:
        umap = import_umap()
        X = np.random.default_rng(seed).normal(size=(WARM_UP_ROWS, 4))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if n_rows < APPROXIMATE_FROM_ROWS:  # the umap tool's exact branch: precomputed distances, no transform
                from scipy.spatial.distance import cdist

                umap.UMAP(n_components=2, n_neighbors=15, random_state=seed, n_epochs=20,
                          metric="precomputed").fit_transform(cdist(X, X))
            else:
                from serendip.tools.cluster_methods import model_rows
                from serendip.tools.umap_neighbours import EXACT_MEASURED_DIMS, neighbour_arguments, use_exact

                exact = use_exact(n_rows, min(n_rows, model_rows(EXACT_MEASURED_DIMS)))
                model = umap.UMAP(n_components=2, n_neighbors=15, random_state=seed, transform_seed=seed, n_epochs=20,
                                  **neighbour_arguments(X, 15, exact))
                model.fit_transform(X)
                model.transform(X[:20])
    return time.monotonic() - started


def _warm_up_quietly(n_rows: int) -> None:
    global warm_up_seconds
    try:
        warm_up_seconds = warm_up(n_rows)
        print(f"numba warm-up of UMAP done in {warm_up_seconds:.1f} s (cache {cache_dir()})", flush=True)
    except Exception as exc:  # noqa: BLE001  (a failed warm-up only means the first real call compiles)
        print(f"numba warm-up of UMAP failed: {type(exc).__name__}: {exc}", flush=True)


def start_warm_up(n_rows: int) -> threading.Thread | None:
    """Run :func:`warm_up` in a daemon thread (once per process); returns the thread (None for a table of
    fewer than :data:`WARM_UP_MIN_ROWS` rows, which is not embedded)."""
    global _warm_up_thread
    if n_rows < WARM_UP_MIN_ROWS:
        return None
    if _warm_up_thread is None:
        _warm_up_thread = threading.Thread(target=_warm_up_quietly, args=(n_rows,), name="umap-warm-up", daemon=True)
        _warm_up_thread.start()
    return _warm_up_thread
