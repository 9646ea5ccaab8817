"""The HTML report: self-contained, answer first, figures embedded; renders in a headless browser."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess

import matplotlib
import networkx as nx
import numpy as np
import pandas as pd
import pytest

import bayesrca as br
from bayesrca.exceptions import ConfigError
from bayesrca.report import render_report

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    db, cache = rng.exponential(1.0, 400), rng.exponential(1.0, 400)
    api = db + cache + rng.exponential(0.5, 400)
    frame = pd.DataFrame({"db": db, "cache": cache, "api": api, "site": api + rng.exponential(0.5, 400)})
    graph = nx.DiGraph([("db", "api"), ("cache", "api"), ("api", "site")])
    scm = br.BayesianSCM(graph, mechanisms="auto", num_draws=30).fit(frame, seed=0)
    anomalies = pd.DataFrame({"db": [1.0, 6.0], "cache": [9.0, 1.0], "api": [10.5, 7.5], "site": [11.0, 8.0]})
    return scm, br.attribute_anomalies(scm, "site", anomalies, seed=0, num_mc_samples=500)


def test_report_is_self_contained_and_answers_first(fitted):
    scm, res = fitted
    text = render_report(res, scm)
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert text.count("data:image/png;base64,") == 6  # IT score, forest and graph per anomaly
    assert not re.search(r"(src|href)=['\"]?https?:", text) and "<script" not in text
    first, second = text.index("Anomaly 0"), text.index("Anomaly 1")
    assert "Most likely root cause: cache" in text[first:second]
    assert "Most likely root cause: db" in text[second:]
    assert "Fit diagnostics" in text and "cross-validated elpd" in text
    with pytest.raises(ConfigError, match="ci_prob"):
        render_report(res, scm, ci_prob=2.0)


def test_write_report_and_cli_flag(fitted, tmp_path):
    scm, res = fitted
    path = br.write_report(res, scm, tmp_path / "r.html")
    assert path.stat().st_size > 20_000
    br.save(scm, tmp_path / "m.bayesrca")
    scm.training_data_.head(1).assign(cache=9.0, api=10.5, site=11.0).to_csv(tmp_path / "a.csv", index=False)
    from bayesrca.cli import main

    code = main(["attribute", str(tmp_path / "m.bayesrca"), "--anomalies", str(tmp_path / "a.csv"), "--target", "site",
                 "--report", str(tmp_path / "cli.html"), "--quiet", "--mc-samples", "300", "-o", str(tmp_path / "out.csv")])
    assert code == 0 and "Most likely root cause" in (tmp_path / "cli.html").read_text()


def test_report_names_missing_values_and_rows_used():
    rng = np.random.default_rng(1)
    db = rng.normal(size=300)
    api = db + 0.3 * rng.normal(size=300)
    frame = pd.DataFrame({"db": db, "api": api, "site": api + 0.3 * rng.normal(size=300)})
    frame.loc[::10, "db"] = np.nan
    scm = br.BayesianSCM(nx.DiGraph([("db", "api"), ("api", "site")]), mechanisms="gaussian", num_draws=30).fit(frame, seed=0)
    anomalies = pd.DataFrame({"db": [np.nan, 0.1], "api": [3.0, 3.0], "site": [3.2, 3.2]})
    text = render_report(br.attribute_anomalies(scm, "site", anomalies, seed=0), scm)
    first, second = text.index("Anomaly 0"), text.index("Anomaly 1")
    assert "Missing values integrated out: <b>db</b>" in text[first:second]
    assert "Missing values integrated out" not in text[second:]
    assert "rows_used" in text and ">270<" in text  # db and api were fitted on the 270 rows with db


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_report_renders_in_headless_chromium(fitted, tmp_path):
    scm, res = fitted
    page = br.write_report(res, scm, tmp_path / "r.html")
    shot = tmp_path / "r.png"
    subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1100,2400",
         f"--screenshot={shot}", page.as_uri()],
        capture_output=True, timeout=120, check=False,
    )
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1100, 2400) and len(data) > 50_000  # a page with figures, not a blank one


def test_report_scores_normal_rows_on_the_results_scale(monkeypatch):
    """Regression (issue 15): the report's IT score plot used the default base score and seed 0."""
    import bayesrca.report as report
    from bayesrca.scores import reference_it_scores

    rng = np.random.default_rng(0)
    a = rng.normal(size=300)
    frame = pd.DataFrame({"a": a, "b": a + rng.normal(0, 0.5, 300)})
    scm = br.BayesianSCM(nx.DiGraph([("a", "b")]), mechanisms="gaussian", num_draws=20).fit(frame, seed=0)
    res = br.attribute_anomalies(scm, "b", pd.DataFrame({"a": [3.0, 0.0], "b": [4.0, 2.5]}), seed=5,
                                 base_score="lower")
    used, original = [], report.plot_it_score

    def spy(result, model, **kwargs):
        used.append(kwargs["normal_scores"])
        return original(result, model, **kwargs)

    monkeypatch.setattr(report, "plot_it_score", spy)
    report.render_report(res, scm)
    expected = reference_it_scores(scm, "b", base_score="lower", seed=5)
    assert len(used) == 2  # one plot per anomaly, the same reference rows
    for normal in used:
        np.testing.assert_array_equal(normal, expected)
    assert not np.allclose(np.sort(expected), np.sort(reference_it_scores(scm, "b")))
