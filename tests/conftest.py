"""Shared test fixtures: sessions over in-memory tables and paths to the shared real datasets."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

os.environ.setdefault("MPLCONFIGDIR", tempfile.mkdtemp(prefix="serendip-mpl-"))
os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(tempfile.gettempdir(), "serendip-numba-cache"))
os.environ.setdefault("TTY_INTERACTIVE", "0")
# pytest-xdist already keeps every core busy: a second tool worker per run would only add a process start and
# a UMAP warm-up to each of the suite's many runs. tests/test_pool.py sets the variable for the pool's own tests.
os.environ.setdefault("SERENDIP_TOOL_WORKERS", "1")
# Runs started through the CLI remember findings: never in the user's own store during tests.
os.environ["SERENDIP_MEMORY"] = tempfile.mkdtemp(prefix="serendip-memory-")
for _var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "SERENDIP_MODEL", "SERENDIP_BASE_URL"):
    os.environ.pop(_var, None)

import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from serendip.tools.engine.registry import load_builtin_tools  # noqa: E402
from serendip.tools.engine.session import Session  # noqa: E402
from serendip.tools.engine.table import Table  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASETS = PROJECT_ROOT.parent / "shared" / "datasets"

load_builtin_tools()


@pytest.fixture
def make_session(tmp_path):
    """Factory: ``make_session(df, seed=0)`` -> a Session over a cleaned in-memory table."""
    counter = {"n": 0}

    def factory(df: pd.DataFrame, seed: int = 0, **kwargs) -> Session:
        counter["n"] += 1
        return Session(Table.from_dataframe(df), tmp_path / f"run{counter['n']}", seed=seed, **kwargs)

    return factory


def shared_dataset(relative: str) -> Path:
    """Path of a file under ../shared/datasets, or skip the test saying which file is missing."""
    path = SHARED_DATASETS / relative
    if not path.exists():
        pytest.skip(f"shared dataset missing: {path}")
    return path


# The files that take longest, heaviest first (seconds of one quiet 2-core run, `pytest --durations=0`).
# pytest-xdist hands whole files (--dist loadfile) to whichever worker is free, by default the files with most
# tests first; a one-test file of a minute then starts last and the other worker idles until it ends. Starting
# the long files first (longest-processing-time-first scheduling) keeps both workers busy to the end.
LONGEST_FILES = ("test_chat_cli.py", "test_overnight.py", "test_web_api.py", "test_explore.py",
                 "test_quality_bar.py", "test_tool_contract.py", "test_scale_dask.py", "test_outliers.py",
                 "test_correlate.py", "test_web_browser.py", "test_pool.py", "test_sandbox.py")


def pytest_configure(config):
    if hasattr(config.option, "loadscopereorder"):  # pytest-xdist: keep the order set below
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(session, config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order
