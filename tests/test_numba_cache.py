"""numba's on-disk cache for UMAP: where it lives, and that switching it on really writes compiled code there."""

from __future__ import annotations

import sys
from pathlib import Path

import numba

from serendip.tools.engine import numba_cache


def test_cache_dir_is_under_the_user_cache_dir_unless_overridden(monkeypatch, tmp_path):
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.delenv("SERENDIP_CACHE_DIR", raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert numba_cache.cache_dir() == tmp_path / "xdg" / "serendip" / "numba"
    monkeypatch.setenv("SERENDIP_CACHE_DIR", str(tmp_path / "mine"))
    assert numba_cache.cache_dir() == tmp_path / "mine" / "numba"
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba-own"))
    assert numba_cache.cache_dir() == tmp_path / "numba-own"


def test_uncached_jitted_functions_get_written_to_the_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(numba.config, "CACHE_DIR", numba.config.CACHE_DIR)
    assert numba_cache.configure() == tmp_path / "cache" and (tmp_path / "cache").is_dir()
    assert numba.config.CACHE_DIR == str(tmp_path / "cache")

    # A package defined in a real file (numba caches by source file), like umap's modules.
    source = tmp_path / "fakeumap_mod.py"
    source.write_text("import numba\n\n@numba.njit\ndef twice(x):\n    return 2 * x\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = __import__("fakeumap_mod")
    try:
        assert numba_cache.enable_disk_cache(("fakeumap_mod",)) == 1
        assert numba_cache.enable_disk_cache(("fakeumap_mod",)) == 0  # already switched on
        assert module.twice(21) == 42
        written = [p.name for p in Path(tmp_path / "cache").rglob("*") if p.is_file()]
        assert any(n.startswith("fakeumap_mod.twice") and n.endswith(".nbi") for n in written), written
        assert any(n.endswith(".nbc") for n in written), written
    finally:
        sys.modules.pop("fakeumap_mod", None)


def test_warm_up_starts_once_per_process(monkeypatch):
    calls = []
    monkeypatch.setattr(numba_cache, "_warm_up_thread", None)
    monkeypatch.setattr(numba_cache, "warm_up", lambda n_rows, seed=0: calls.append(n_rows) or 0.0)
    assert numba_cache.start_warm_up(numba_cache.WARM_UP_MIN_ROWS - 1) is None  # too small to be embedded
    first = numba_cache.start_warm_up(5000)
    assert numba_cache.start_warm_up(300) is first
    first.join(timeout=5)
    assert calls == [5000] and numba_cache.warm_up_seconds == 0.0
