"""Command line: ``bayesrca fit`` and ``bayesrca attribute``.

::

    bayesrca fit --graph GRAPH --data TRAIN.csv -o model.bayesrca [--mechanisms auto] [--averaging pseudo-bma+]
                 [--draws 200] [--seed 0]
    bayesrca attribute model.bayesrca --anomalies ANOM.csv --target NODE [--format table|json|csv] [-o FILE]
        [--report report.html]

The graph is an edge list CSV (columns ``source,target``, or ``cause,effect``, or the first two
columns), a node-link JSON file (networkx ``node_link_data``) or GML. Exit codes: 0 success,
2 a problem with the input (the message says what to fix), 1 an unexpected failure.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path

import networkx as nx
import pandas as pd

from .exceptions import BayesRCAError, ConfigError, DataError
from .mechanisms.registry import FAMILY_NAMES

__all__ = ["main", "read_graph"]

EXIT_OK, EXIT_FAILURE, EXIT_INPUT = 0, 1, 2
_EDGE_COLUMNS = (("source", "target"), ("cause", "effect"), ("parent", "child"))


def read_graph(path: str | Path) -> nx.DiGraph:
    """Read a causal graph from an edge-list CSV, a node-link JSON or a GML file.

    Raises
    ------
    DataError
        If the file is missing, its type is unknown, or it does not describe a directed graph.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"graph file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".tsv", ".txt"):
            edges = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", dtype=str, keep_default_na=False)
            if edges.shape[1] < 2:
                raise DataError(f"{path}: an edge list needs two columns (source, target); found {list(edges.columns)}")
            lower = {c.strip().lower(): c for c in edges.columns}
            cols = next(((lower[a], lower[b]) for a, b in _EDGE_COLUMNS if a in lower and b in lower), tuple(edges.columns[:2]))
            graph = nx.DiGraph()
            graph.add_edges_from(zip(edges[cols[0]].str.strip(), edges[cols[1]].str.strip()))
            return graph
        if suffix == ".json":
            data = json.loads(path.read_text())
            key = "edges" if "edges" in data else "links"
            graph = nx.node_link_graph(data, directed=True, multigraph=False, edges=key)
        elif suffix == ".gml":
            graph = nx.read_gml(path)
        else:
            raise DataError(f"{path}: unknown graph file type {suffix!r}; use .csv (edge list), .json (node-link) or .gml")
    except (ValueError, KeyError, TypeError, nx.NetworkXError) as err:
        raise DataError(f"{path}: cannot read a graph from it ({type(err).__name__}: {err})") from err
    if not graph.is_directed():
        raise DataError(f"{path}: the graph is undirected; a causal graph needs directed edges")
    return nx.DiGraph(graph)


def _read_table(path: str | Path, what: str) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} file {str(path)!r} does not exist")
    if path.stat().st_size == 0:
        raise DataError(f"{what} file {str(path)!r} is empty; it needs a header row with one column per node")
    try:
        frame = pd.read_csv(path)
    except (ValueError, pd.errors.ParserError) as err:
        raise DataError(f"{what} file {str(path)!r}: cannot read it as CSV ({err})") from err
    return _parse_timestamps(frame)


def _parse_timestamps(frame: pd.DataFrame) -> pd.DataFrame:
    """Text columns that are ISO 8601 timestamps become datetimes (the library then uses one as the index)."""
    for col in [c for c in frame.columns if pd.api.types.is_string_dtype(frame[c]) or frame[c].dtype == object]:
        try:
            frame[col] = pd.to_datetime(frame[col], format="ISO8601")
        except (ValueError, TypeError):
            pass  # not a timestamp: left as text, validation names it if it is a node
    return frame


def _check_args(args: argparse.Namespace) -> None:
    """Reject bad option values before any file is read or any work is done."""
    for option, value, minimum in (("--draws", getattr(args, "draws", None), 1),
                                   ("--mc-samples", getattr(args, "mc_samples", None), 10),
                                   ("--seed", args.seed, 0)):
        if value is not None and value < minimum:
            raise ConfigError(f"{option} must be an integer >= {minimum}, got {value}")
    ci_prob = getattr(args, "ci_prob", None)
    if ci_prob is not None and not 0 < ci_prob < 1:  # also rejects nan
        raise ConfigError(f"--ci-prob must be a probability strictly between 0 and 1 (e.g. 0.9), got {ci_prob}")
    for option in ("output", "report"):
        target = getattr(args, option, None)
        if target and not Path(target).resolve().parent.is_dir():
            raise ConfigError(f"--{option}: the folder of {target!r} does not exist")


def _write(path: str | Path, text: str, what: str) -> None:
    try:
        Path(path).write_text(text)
    except OSError as err:
        raise DataError(f"cannot write the {what} to {str(path)!r} ({err.strerror or err})") from err


def _naming_file(err: DataError, what: str, path: str) -> DataError:
    """The same error, its message prefixed with the file the bad frame came from."""
    return DataError(f"{what} file {path!r}: {err}")


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    defaults = argparse.ArgumentDefaultsHelpFormatter
    parser = argparse.ArgumentParser(prog="bayesrca", description="Bayesian root-cause analysis of outliers.",
                                     formatter_class=defaults)
    parser.add_argument("--version", action="version", version=f"bayesrca {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    fit = sub.add_parser("fit", help="fit a Bayesian SCM on normal-operation data and save it", formatter_class=defaults)
    fit.add_argument("--graph", required=True, help="causal graph: edge-list CSV, node-link JSON or GML")
    fit.add_argument("--data", required=True, help="CSV of normal operation, one column per node")
    fit.add_argument("-o", "--output", required=True, help="model file to write (e.g. model.bayesrca)")
    fit.add_argument("--mechanisms", default="auto", choices=["auto", *FAMILY_NAMES])
    fit.add_argument("--averaging", default="pseudo-bma+", choices=["pseudo-bma+", "stacking", "none"],
                     help="'auto' nodes: average over families where the data cannot decide (default pseudo-bma+)")
    fit.add_argument("--draws", type=int, default=200, help="posterior draws per node")
    fit.add_argument("--seed", type=int, default=0, help="random seed (same seed, same numbers)")
    fit.add_argument("--quiet", action="store_true", help="no progress bars, no warnings")
    att = sub.add_parser("attribute", help="attribute anomalies at a target node with a saved model", formatter_class=defaults)
    att.add_argument("model", help="model file written by 'bayesrca fit'")
    att.add_argument("--anomalies", required=True, help="CSV of anomalous rows, one column per node")
    att.add_argument("--target", required=True, help="the node where the outliers were seen")
    att.add_argument("--format", default="table", choices=["table", "json", "csv"])
    att.add_argument("-o", "--output", help="write the result here instead of standard output")
    att.add_argument("--report", help="also write a self-contained HTML report here")
    att.add_argument("--ci-prob", type=float, default=0.9, help="credible interval probability")
    att.add_argument("--mc-samples", type=int, default=2000, help="Monte Carlo samples per coalition")
    att.add_argument("--seed", type=int, default=0, help="random seed (same seed, same numbers)")
    att.add_argument("--quiet", action="store_true", help="no progress bars, no warnings")
    return parser


def _fit(args: argparse.Namespace) -> str:
    from .persistence import save
    from .scm import BayesianSCM

    graph = read_graph(args.graph)
    data = _read_table(args.data, "data")
    try:
        scm = BayesianSCM(graph, mechanisms=args.mechanisms, averaging=args.averaging, num_draws=args.draws)
        scm = scm.fit(data, seed=args.seed, progress=False if args.quiet else None)
    except DataError as err:
        raise _naming_file(err, "data", args.data) from err
    try:
        path = save(scm, args.output)
    except OSError as err:
        raise DataError(f"cannot write the model to {args.output!r} ({err.strerror or err})") from err
    used = min(scm.rows_used_.values())
    holes = "" if used == len(data) else f", each node on the rows where it and its parents are observed (fewest {used})"
    return f"fitted {len(scm.nodes_)} nodes on {len(data)} rows{holes} ({args.draws} draws); model written to {path}"


def _attribute(args: argparse.Namespace) -> str:
    from .attribution import attribute_anomalies
    from .persistence import load

    scm = load(args.model)
    anomalies = _read_table(args.anomalies, "anomalies")
    target = next((n for n in scm.graph_.nodes if str(n) == args.target), args.target)
    try:
        res = attribute_anomalies(
            scm, target, anomalies, seed=args.seed, num_mc_samples=args.mc_samples, progress=False if args.quiet else None
        )
    except DataError as err:  # the anomalies do not match the model's graph
        raise _naming_file(err, "anomalies", args.anomalies) from err
    table = res.summary(ci_prob=args.ci_prob)
    its = res.it_score_summary(ci_prob=args.ci_prob)
    if args.report:
        import matplotlib

        matplotlib.use("Agg")  # files only, no display
        from .report import write_report

        try:
            write_report(res, scm, args.report, ci_prob=args.ci_prob, progress=False if args.quiet else None)
        except OSError as err:
            raise DataError(f"cannot write the report to {args.report!r} ({err.strerror or err})") from err
    if args.format == "csv":
        text = table.to_csv(index=False)
    elif args.format == "json":
        from . import __version__

        fitted = scm.summary()
        mechanisms = {str(n): m for n, m in zip(fitted["node"], fitted["mechanism"])}
        payload = {"bayesrca_version": __version__, "target": str(res.target), "ci_prob": args.ci_prob,
                   "method_info": json.loads(json.dumps(dict(res.method_info), default=str)),
                   "mechanisms": mechanisms,
                   "it_score": json.loads(its.to_json(orient="records")),
                   "contributions": json.loads(table.to_json(orient="records"))}
        text = json.dumps(payload, indent=1)
    else:
        lines = [f"IT outlier score at {res.target!r} (median [{args.ci_prob:.0%} interval]):"]
        lines += [f"  anomaly {r.anomaly}: {r.median:.3g} [{r.lower:.3g}, {r.upper:.3g}]" for r in its.itertuples()]
        missing = res.method_info.get("missing") or []
        lines += [f"  anomaly {a}: missing values integrated out: {', '.join(m)}" for a, m in zip(res.anomalies, missing) if m]
        shown = table[["anomaly", "node", "median", "lower", "upper", "prob_top"]]
        lines += ["", shown.to_string(index=False, float_format=lambda v: f"{v:.3f}")]
        text = "\n".join(lines) + "\n"
    written = [f"report written to {args.report}"] if args.report else []
    if args.output:
        _write(args.output, text, "result")
        return "; ".join([f"result written to {args.output}", *written])
    sys.stdout.write(text)
    return "; ".join(written)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = _parser().parse_args(argv)
    with warnings.catch_warnings():
        if args.quiet:
            warnings.simplefilter("ignore")
        else:
            warnings.showwarning = _show_warning
        try:
            _check_args(args)
            message = _fit(args) if args.command == "fit" else _attribute(args)
        except BayesRCAError as err:
            text = " ".join(str(err).split())  # one line, whatever the message holds
            print(f"bayesrca {args.command}: error: {text}", file=sys.stderr)
            return EXIT_INPUT
        except Exception as err:  # noqa: BLE001 - a bug, not bad input: show the traceback for a report
            traceback.print_exc()
            print(f"bayesrca {args.command}: unexpected {type(err).__name__}: {err} (please report)", file=sys.stderr)
            return EXIT_FAILURE
    if message and not args.quiet:
        print(message, file=sys.stderr)
    return EXIT_OK


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
