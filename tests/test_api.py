"""The public API: ``serendip.open`` (a live sandboxed session) and ``serendip.explore`` (a whole run), from a
pandas DataFrame, an astropy Table and a FITS file, and the worker stopped by the context manager."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from astropy import units as u
from astropy.table import Table as AstropyTable

import serendip
from serendip.tools.engine.contracts import Finding, FindingsDocument


@pytest.fixture(autouse=True)
def no_user_config(monkeypatch, tmp_path):
    monkeypatch.setenv("SERENDIP_CONFIG", str(tmp_path / "no-config.toml"))
    for var in ("SERENDIP_MODEL", "OPENAI_API_KEY", "OPENAI_BASE_URL", "SERENDIP_BASE_URL"):
        monkeypatch.delenv(var, raising=False)


def planted(n: int = 400, seed: int = 1) -> pd.DataFrame:
    r = np.random.default_rng(seed)
    mass = r.normal(10, 0.5, n)
    return pd.DataFrame({"mass": mass, "sfr": 0.8 * mass + r.normal(0, 0.2, n), "noise": r.normal(size=n)})


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_open_a_dataframe_call_tools_and_the_worker_stops(tmp_path):
    frame = planted()
    before = frame.copy()
    with serendip.open(frame, workdir=tmp_path / "session", seed=3) as analysis:
        pid = analysis.pid
        assert pid is not None and pid != os.getpid() and pid_alive(pid)
        names = {t["function"]["name"] for t in analysis.tools()}
        assert {"describe", "correlate", "residualize", "cluster"} <= names
        result = analysis.call("correlate", columns=["mass", "sfr", "noise"])
        assert isinstance(result, serendip.ToolResult) and result.ok and result.id == "R1"
        assert "<table>" in result._repr_html_() or "<p>" in result._repr_html_()
        refused = analysis.call("correlate", columns=["no_such_column"])
        assert not refused.ok and "no_such_column" in refused.error and "no_such_column" in refused._repr_html_()
        findings = analysis.findings
        assert findings and all(isinstance(f, Finding) for f in findings)
        top = findings[0]
        assert top.kind == "trend" and set(top.columns) == {"mass", "sfr"} and top.evidence == ["R1"]
        assert top.stats.q_value is not None and top.stats.q_value < 0.05
        report = analysis.report(tmp_path / "report")
    assert analysis.runner is None
    assert not pid_alive(pid)  # the context manager stopped (and reaped) the worker: no orphan
    pd.testing.assert_frame_equal(frame, before)  # input never modified
    doc = FindingsDocument.model_validate(json.loads((tmp_path / "report" / "findings.json").read_text()))
    assert report.name == "report.html" and report.exists() and doc.findings[0].columns == top.columns
    assert (tmp_path / "report" / "rows.csv").exists()


def test_open_a_fits_path_with_units(tmp_path):
    table = AstropyTable({"log_mass": planted()["mass"].to_numpy(), "log_sfr": planted()["sfr"].to_numpy()})
    table["log_mass"].unit = u.Msun
    path = tmp_path / "galaxies.fits"
    table.write(path)
    with serendip.open(str(path), workdir=tmp_path / "s", sandbox=False) as analysis:
        assert analysis.path == path.resolve()  # a path is read where it is, not copied
        profile = analysis.call("describe")
        assert profile.ok and analysis.dataset["n_rows"] == 400
        units = {c["name"]: c.get("unit") for c in analysis.dataset["columns"]}
        assert units["log_mass"] == "solMass" and units["log_sfr"] is None
        res = analysis.call("residualize", y="log_sfr", x=["log_mass"])
        assert res.ok and res.derived[0]["operation"] == "residual"
        assert res.derived[0]["base_columns"] == ["log_sfr"] and res.derived[0]["controls"] == ["log_mass"]


def test_open_an_astropy_table_keeps_units(tmp_path):
    table = AstropyTable({"flux": np.linspace(1, 2, 50), "size": np.linspace(3, 4, 50)})
    table["flux"].unit = u.mJy
    with serendip.open(table, workdir=tmp_path / "s", sandbox=False) as analysis:
        assert analysis.path.suffix == ".fits"
        units = {c["name"]: c.get("unit") for c in analysis.dataset["columns"]}
        assert units["flux"] == "mJy"


def test_open_a_dataframe_whose_cells_mix_numbers_and_limits(tmp_path):
    frame = pd.DataFrame({"ew": [1.5, "<2.0", 3.0, None, 2.5, 4.0] * 5, "x": np.arange(30.0)})
    with serendip.open(frame, workdir=tmp_path, sandbox=False) as analysis:
        profile = analysis.call("describe", columns=["ew"])
    assert profile.ok, profile.error
    text = json.dumps(profile.summary, default=str).lower()
    assert "ew" in text and "limit" in text
    assert frame["ew"].tolist()[:2] == [1.5, "<2.0"]  # the caller's frame is untouched


def test_open_refuses_bad_input_in_one_line(tmp_path):
    with pytest.raises(serendip.RunSetupError) as err:
        serendip.open(tmp_path / "missing.csv", workdir=tmp_path / "s", sandbox=False)
    assert "table not found" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(TypeError, match="file path, a pandas DataFrame or an astropy Table"):
        serendip.open([1, 2, 3], workdir=tmp_path / "s2", sandbox=False)
    with pytest.raises(serendip.SettingsError, match="max_steps"):
        serendip.explore(planted(), out=tmp_path / "run", max_steps=0, in_process=True)


def test_explore_a_dataframe_gives_a_run(tmp_path):
    run = serendip.explore(planted(), goal="which trends relate mass and sfr?", out=tmp_path / "run", in_process=True, max_steps=30,
                           name="galaxies")
    assert isinstance(run, serendip.Run) and run.status == "completed" and run.reason == ""
    assert run.report_path == tmp_path / "run" / "report.html" and run.report_path.exists()
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["config"]["max_steps"] == 30 and info["model"] == "autopilot"
    assert info["table"].endswith("galaxies.parquet")  # the frame was written inside the run folder
    assert run.findings and all(isinstance(f, Finding) for f in run.findings)
    assert any(f.kind == "trend" and set(f.base_columns) == {"mass", "sfr"} for f in run.findings)
    html = run._repr_html_()
    assert run.status in html and "report.html" in html and run.findings[0].title[:20] in html


def test_import_serendip_is_light_and_lists_the_api():
    assert {"open", "explore", "Analysis", "Run", "Settings", "Finding", "ToolResult"} <= set(serendip.__all__)
    with pytest.raises(AttributeError):
        serendip.no_such_name  # noqa: B018


@pytest.mark.parametrize("start", ["forkserver", "spawn"])
def test_a_script_without_a_main_guard_can_open_a_session(tmp_path, start):
    # multiprocessing re-runs the caller's script in each child; workers must not (they would start workers).
    planted().to_csv(tmp_path / "t.csv", index=False)
    script = tmp_path / "quick_look.py"
    script.write_text("import serendip\n"
                      f"with serendip.open({str(tmp_path / 't.csv')!r}) as analysis:\n"
                      "    print('rho', analysis.call('correlate', columns=['mass', 'sfr']).ok)\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "SERENDIP_WORKER_START"}
    env["SERENDIP_WORKER_START"] = start
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("rho True") == 1
