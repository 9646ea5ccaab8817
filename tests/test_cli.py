"""The command line: fit and attribute end to end, graph formats, output formats, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from bayesrca.cli import EXIT_FAILURE, EXIT_INPUT, EXIT_OK, main, read_graph
from bayesrca.exceptions import DataError

EDGES = [("db", "api"), ("cache", "api"), ("api", "site")]


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    db, cache = rng.exponential(1.0, 400), rng.exponential(1.0, 400)
    api = db + cache + rng.exponential(0.5, 400)
    site = api + rng.exponential(0.5, 400)
    pd.DataFrame({"db": db, "cache": cache, "api": api, "site": site}).to_csv(tmp_path / "train.csv", index=False)
    pd.DataFrame({"db": [1.0], "cache": [9.0], "api": [10.5], "site": [11.0]}).to_csv(tmp_path / "anom.csv", index=False)
    pd.DataFrame(EDGES, columns=["source", "target"]).to_csv(tmp_path / "graph.csv", index=False)
    return tmp_path


def test_fit_then_attribute_table_json_csv(files, capsys):
    model = files / "m.bayesrca"
    code = main(["fit", "--graph", str(files / "graph.csv"), "--data", str(files / "train.csv"), "-o", str(model),
                 "--mechanisms", "linear", "--draws", "30", "--quiet"])
    assert code == EXIT_OK and model.is_file()
    base = ["attribute", str(model), "--anomalies", str(files / "anom.csv"), "--target", "site", "--quiet", "--mc-samples", "500"]
    assert main(base) == EXIT_OK
    table = capsys.readouterr().out
    assert "IT outlier score at 'site'" in table and table.index("cache") < table.index("db")
    assert main([*base, "--format", "json"]) == EXIT_OK
    payload = json.loads(capsys.readouterr().out)
    top = max(payload["contributions"], key=lambda r: r["median"])
    assert top["node"] == "cache" and payload["target"] == "site" and payload["it_score"][0]["median"] > 0
    import bayesrca as br

    assert payload["bayesrca_version"] == br.__version__ and set(payload["mechanisms"]) == {"db", "cache", "api", "site"}
    assert {"seed", "engine", "base_score"} <= set(payload["method_info"])
    out = files / "result.csv"
    assert main([*base, "--format", "csv", "-o", str(out)]) == EXIT_OK
    frame = pd.read_csv(out)
    assert set(frame["node"]) == {"db", "cache", "api", "site"} and {"lower", "upper", "prob_top"} <= set(frame.columns)
    # same seed, same numbers
    assert main([*base, "--format", "csv", "-o", str(files / "again.csv")]) == EXIT_OK
    pd.testing.assert_frame_equal(frame, pd.read_csv(files / "again.csv"))


def test_graph_formats(tmp_path):
    expected = nx.DiGraph(EDGES)
    pd.DataFrame(EDGES, columns=["cause", "effect"]).to_csv(tmp_path / "g.csv", index=False)
    (tmp_path / "g.json").write_text(json.dumps(nx.node_link_data(expected, edges="edges")))
    nx.write_gml(expected, tmp_path / "g.gml")
    for name in ("g.csv", "g.json", "g.gml"):
        graph = read_graph(tmp_path / name)
        assert set(graph.edges) == set(expected.edges), name
    (tmp_path / "g.dot").write_text("digraph {}")
    with pytest.raises(DataError, match="unknown graph file type"):
        read_graph(tmp_path / "g.dot")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match="cannot read a graph"):
        read_graph(tmp_path / "bad.json")
    nx.write_gml(nx.Graph(EDGES), tmp_path / "undirected.gml")
    with pytest.raises(DataError, match="undirected"):
        read_graph(tmp_path / "undirected.gml")


def test_bad_input_exits_with_2_and_says_what_is_wrong(files, capsys):
    missing = main(["fit", "--graph", str(files / "nope.csv"), "--data", str(files / "train.csv"), "-o", str(files / "m")])
    assert missing == EXIT_INPUT and "does not exist" in capsys.readouterr().err
    pd.DataFrame([("site", "db"), *EDGES], columns=["source", "target"]).to_csv(files / "cycle.csv", index=False)
    code = main(["fit", "--graph", str(files / "cycle.csv"), "--data", str(files / "train.csv"), "-o", str(files / "m"), "--quiet"])
    assert code == EXIT_INPUT and "cycle" in capsys.readouterr().err.lower()
    main(["fit", "--graph", str(files / "graph.csv"), "--data", str(files / "train.csv"), "-o", str(files / "m.bayesrca"),
          "--mechanisms", "gaussian", "--draws", "10", "--quiet"])
    code = main(["attribute", str(files / "m.bayesrca"), "--anomalies", str(files / "anom.csv"), "--target", "nowhere", "--quiet"])
    assert code == EXIT_INPUT and "nowhere" in capsys.readouterr().err
    (files / "junk.bayesrca").write_text("junk")
    code = main(["attribute", str(files / "junk.bayesrca"), "--anomalies", str(files / "anom.csv"), "--target", "site"])
    assert code == EXIT_INPUT and "not a readable bayesrca model file" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: unknown format
        main(["attribute", str(files / "m.bayesrca"), "--anomalies", str(files / "anom.csv"), "--target", "site", "--format", "xml"])


def test_python_dash_m_runs_the_command_line(files):
    proc = subprocess.run(
        [sys.executable, "-m", "bayesrca", "fit", "--graph", str(files / "graph.csv"), "--data", str(files / "train.csv"),
         "-o", str(files / "m.bayesrca"), "--mechanisms", "gaussian", "--draws", "10"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "model written to" in proc.stderr


@pytest.fixture
def model(files):
    path = files / "m.bayesrca"
    assert main(["fit", "--graph", str(files / "graph.csv"), "--data", str(files / "train.csv"), "-o", str(path),
                 "--mechanisms", "gaussian", "--draws", "10", "--quiet"]) == EXIT_OK
    return path


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err  # one line
    return err


def test_timestamp_column_labels_the_anomalies(files, model, capsys):
    path = files / "stamped.csv"
    pd.DataFrame({"time": ["2026-03-01T10:15:00"], "db": [1.0], "cache": [9.0], "api": [10.5], "site": [11.0]}).to_csv(path, index=False)
    code = main(["attribute", str(model), "--anomalies", str(path), "--target", "site", "--quiet", "--format", "csv"])
    assert code == EXIT_OK
    assert "2026-03-01 10:15:00" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (pd.DataFrame({"db": [1.0], "cache": [9.0], "site": [11.0]}), "'api'"),  # a column missing
        (pd.DataFrame({"db": [1.0], "cache": [9.0], "api": [10.5], "site": [11.0], "zz": [1.0]}), "'zz'"),  # extra
        (pd.DataFrame({"db": ["slow"], "cache": [9.0], "api": [10.5], "site": [11.0]}), "'db'"),  # not a number
        (pd.DataFrame({"db": [1.0], "cache": [9.0], "api": [10.5], "site": [None]}), "'site' is missing"),  # target missing
        (pd.DataFrame({"db": [1.0], "cache": [np.inf], "api": [10.5], "site": [11.0]}), "'cache'"),  # infinite
        (pd.DataFrame(columns=["db", "cache", "api", "site"]), "0 row"),  # header only
    ],
)
def test_bad_anomalies_file_exits_2_naming_the_file_and_column(files, model, capsys, frame, expected):
    path = files / "bad.csv"
    frame.to_csv(path, index=False)
    code = main(["attribute", str(model), "--anomalies", str(path), "--target", "site", "--quiet"])
    err = _err(capsys)
    assert code == EXIT_INPUT and "bad.csv" in err and expected in err


def test_missing_values_in_training_and_anomaly_files(files, capsys):
    """Empty CSV cells are missing values: fitted on complete cases, integrated out in the anomaly."""
    train = pd.read_csv(files / "train.csv")
    train.loc[::7, "db"] = np.nan
    train.to_csv(files / "holes.csv", index=False)
    pd.DataFrame({"db": [None], "cache": [9.0], "api": [10.5], "site": [11.0]}).to_csv(files / "anom_holes.csv", index=False)
    model = files / "holes.bayesrca"
    assert main(["fit", "--graph", str(files / "graph.csv"), "--data", str(files / "holes.csv"), "-o", str(model),
                 "--mechanisms", "gaussian", "--draws", "20"]) == EXIT_OK
    assert "fewest 342" in capsys.readouterr().err  # 400 rows, every 7th db missing: db and api use 342
    base = ["attribute", str(model), "--anomalies", str(files / "anom_holes.csv"), "--target", "site", "--quiet"]
    assert main(base) == EXIT_OK
    assert "anomaly 0: missing values integrated out: db" in capsys.readouterr().out
    assert main([*base, "--format", "json"]) == EXIT_OK
    payload = json.loads(capsys.readouterr().out)
    assert payload["method_info"]["missing"] == [["db"]]
    assert max(payload["contributions"], key=lambda r: r["median"])["node"] == "cache"


def test_bad_files_and_options_exit_2_with_one_line(files, model, capsys):
    anomalies, train = str(files / "anom.csv"), str(files / "train.csv")
    (files / "empty.csv").write_text("")
    (files / "notamodel.bayesrca").write_bytes(b"PK\x03\x04 not really a zip")
    pd.DataFrame([*EDGES, ("api", "api")], columns=["source", "target"]).to_csv(files / "loop.csv", index=False)
    cases = [
        (["attribute", str(model), "--anomalies", anomalies, "--target", "nowhere"], "'nowhere'"),
        (["attribute", str(model), "--anomalies", str(files / "empty.csv"), "--target", "site"], "empty.csv"),
        (["attribute", str(files / "notamodel.bayesrca"), "--anomalies", anomalies, "--target", "site"], "notamodel"),
        (["attribute", train, "--anomalies", anomalies, "--target", "site"], "train.csv"),  # a CSV is not a model
        (["attribute", str(model), "--anomalies", anomalies, "--target", "site", "--ci-prob", "2"], "--ci-prob"),
        (["attribute", str(model), "--anomalies", anomalies, "--target", "site", "--ci-prob", "nan"], "--ci-prob"),
        (["attribute", str(model), "--anomalies", anomalies, "--target", "site", "--mc-samples", "0"], "--mc-samples"),
        (["attribute", str(model), "--anomalies", anomalies, "--target", "site", "-o", str(files / "no" / "x.json")],
         "--output"),
        (["fit", "--graph", str(files / "graph.csv"), "--data", train, "-o", str(files / "x"), "--draws", "0"], "--draws"),
        (["fit", "--graph", str(files / "graph.csv"), "--data", train, "-o", str(files / "x"), "--seed", "-1"], "--seed"),
        (["fit", "--graph", str(files / "loop.csv"), "--data", train, "-o", str(files / "x")], "self-loop"),
        (["fit", "--graph", str(files / "empty.csv"), "--data", train, "-o", str(files / "x")], "empty.csv"),
        (["fit", "--graph", str(files / "graph.csv"), "--data", str(files / "empty.csv"), "-o", str(files / "x")],
         "empty.csv"),
    ]
    for argv, expected in cases:
        code = main([*argv, "--quiet"])
        err = _err(capsys)
        assert code == EXIT_INPUT, (argv, err)
        assert err.startswith(f"bayesrca {argv[0]}: error:") and expected in err, (argv, err)


def test_unexpected_failure_exits_1(files, model, capsys, monkeypatch):
    import bayesrca.attribution

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(bayesrca.attribution, "attribute_anomalies", broken)
    code = main(["attribute", str(model), "--anomalies", str(files / "anom.csv"), "--target", "site", "--quiet"])
    assert code == EXIT_FAILURE and "unexpected RuntimeError: boom" in capsys.readouterr().err


def test_version_and_help_with_defaults(capsys):
    import bayesrca as br
    from bayesrca.cli import main

    with pytest.raises(SystemExit) as out:
        main(["--version"])
    assert out.value.code == 0 and capsys.readouterr().out.strip() == f"bayesrca {br.__version__}"
    with pytest.raises(SystemExit):
        main(["attribute", "--help"])
    assert "(default: 2000)" in capsys.readouterr().out


def test_fit_passes_the_averaging_choice(files):
    import bayesrca as br

    model = files / "avg.bayesrca"
    code = main(["fit", "--graph", str(files / "graph.csv"), "--data", str(files / "train.csv"), "-o", str(model),
                 "--averaging", "none", "--draws", "10", "--quiet"])
    assert code == EXIT_OK
    scm = br.load(model)
    assert scm.averaging == "none" and not any(isinstance(m, br.FamilyMixture) for m in scm.mechanisms_.values())
