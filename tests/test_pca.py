"""The pca tool: a dominant latent trend flagged with its driver, loading signs, component names, the
default number of components, per-row scores with NaN for dropped rows, missing-value policy, determinism."""

from __future__ import annotations

import numpy as np
import pandas as pd

from serendip.tools.pca import component_label, components_for_variance, principal_components
from serendip.tools.engine.registry import call_tool

COEFS = {"mass": 1.0, "sfr": 0.8, "age": -0.9, "luminosity": 1.2, "metallicity": -0.7}


def one_latent(n: int = 2000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Every column follows one latent variable; 'luminosity' most tightly."""
    r = np.random.default_rng(seed)
    latent = r.normal(size=n)
    noise = {"mass": 0.4, "sfr": 0.5, "age": 0.45, "luminosity": 0.1, "metallicity": 0.5}
    df = pd.DataFrame({c: b * latent + r.normal(scale=noise[c], size=n) + 10 for c, b in COEFS.items()})
    return df, latent


def test_dominant_component_flagged_with_its_driver(make_session):
    df, _ = one_latent()
    res = call_tool(make_session(df), "pca", {})
    assert res.ok, res.error
    s = res.summary
    dom = s["dominant"]
    assert dom is not None and dom["driver"] == "luminosity" and dom["driver_correlation"] > 0.95
    assert s["explained_variance_ratio"][0] > 0.5
    assert s["explained_variance_ratio"][0] > 2 * s["explained_variance_ratio"][1]
    assert "residualize" in dom["hint"] and "residualize" in res.markdown
    assert "`luminosity`" in res.markdown


def test_loading_signs_follow_the_latent(make_session):
    df, _ = one_latent()
    res = call_tool(make_session(df), "pca", {"n_components": 2})
    pc1 = res.summary["components"][0]
    loadings = pc1["top_loadings"]
    assert set(loadings) == set(COEFS)
    # The orientation of PC1 is a convention; the relative signs are not.
    ref = np.sign(loadings["mass"])
    for col, coef in COEFS.items():
        assert np.sign(loadings[col]) * ref == np.sign(coef), col
    for word in pc1["label"].split():
        col = word[1:]
        assert (word[0] == "+") == (loadings[col] > 0)
    assert pc1["label"].split()[0][1:] == "luminosity"


def test_independent_columns_have_no_dominant_component(make_session):
    r = np.random.default_rng(1)
    df = pd.DataFrame(r.normal(size=(1500, 6)), columns=list("abcdef"))
    res = call_tool(make_session(df), "pca", {})
    s = res.summary
    assert s["dominant"] is None
    assert s["n_components"] == 6 or s["components"][-1]["cumulative"] >= 0.9
    assert abs(sum(s["explained_variance_ratio"]) - 1) < 1e-3


def test_default_components_reach_ninety_percent():
    ratio = np.array([0.5, 0.3, 0.15, 0.05])
    assert components_for_variance(ratio) == 3
    assert components_for_variance(np.full(40, 1 / 40)) == 10
    assert component_label(np.array([0.7, -0.6, 0.1, 0.39]), ["a", "b", "c", "d"]) == "+a -b +d"


def test_scores_are_saved_per_row_with_nan_for_dropped_rows(make_session):
    df, latent = one_latent(n=500)
    df.loc[[3, 10], "sfr"] = np.nan
    session = make_session(df)
    res = call_tool(session, "pca", {"save_scores": 2})
    assert res.ok, res.error
    assert res.artifacts == res.summary["score_artifacts"] and len(res.artifacts) == 2
    pc1 = session.load_artifact(res.artifacts[0])
    assert pc1.dtype.kind == "f" and len(pc1) == 500
    assert np.isnan(pc1[[3, 10]]).all() and np.isfinite(np.delete(pc1, [3, 10])).all()
    ok = np.isfinite(pc1)
    assert abs(np.corrcoef(pc1[ok], latent[ok])[0, 1]) > 0.95
    assert res.summary["n_rows_missing"] == 2 and "dropped" in res.markdown
    assert res.figures and (session.workdir / res.figures[0]).exists()

    imputed = call_tool(session, "pca", {"missing": "impute", "save_scores": 1})
    assert np.isfinite(session.load_artifact(imputed.artifacts[0])).all()
    assert any("imputed" in n for n in imputed.summary["notes"])


def test_deterministic_and_sign_stable(make_session):
    df, _ = one_latent(n=800, seed=2)
    s1, s2 = make_session(df), make_session(df)
    r1 = call_tool(s1, "pca", {"scaling": "robust"}, result_id="R1")
    r2 = call_tool(s2, "pca", {"scaling": "robust"}, result_id="R1")
    assert r1.summary == r2.summary
    assert np.array_equal(s1.load_artifact(r1.artifacts[0]), s2.load_artifact(r2.artifacts[0]))
    pc = principal_components(df.to_numpy() - df.to_numpy().mean(axis=0))
    assert np.all(pc.components[np.arange(len(pc.components)), np.abs(pc.components).argmax(axis=1)] > 0)


def test_fixable_errors_and_clipped_components(make_session):
    r = np.random.default_rng(3)
    df = pd.DataFrame({"a": r.normal(size=50), "const": np.ones(50), "b": r.normal(size=50)})
    res = call_tool(make_session(df), "pca", {"columns": ["a", "const"]})
    assert not res.ok and "at least two usable numeric columns" in res.error and "constant" in res.error
    res = call_tool(make_session(df), "pca", {"columns": ["a", "b"], "n_components": 5})
    assert res.ok and res.summary["n_components"] == 2
    assert any("lowered" in n for n in res.summary["notes"])
    res = call_tool(make_session(df), "pca", {"scaling": "minmax"})
    assert not res.ok and "'scaling' parameter of pca" in res.error
