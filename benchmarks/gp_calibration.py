"""Coverage of the true contributions through nonlinear mechanisms: SplineANM against GPANM.

Protocol (truth as in ``calibration.py``, reusing :mod:`simulate`):

* True SCM (``--scm chain``): ``X0 ~ N(0, 1)``, ``X1 = tanh(2 X0) + 0.5 X0^2 + 0.3 N1``,
  ``X2 = softplus(X1) + 0.3 N2`` (Gaussian noise); target X2. ``--scm random`` instead takes
  ``simulate.TrueSCM(chain X0 -> X1 -> X2, "nonlinear", "gaussian", seed=1)`` (random tanh,
  quadratic and linear terms per parent, noise sd in [0.5, 1]).
* ``--outliers`` fixed outliers, outlier k caused by node k mod 3 (``TrueSCM.inject``, shift
  ``--shift`` noise sd, true IT >= log 100, not an outlier without the shift); exact
  contributions by Monte Carlo with ``--truth-mc`` samples per coalition
  (``TrueSCM.true_contributions``).
* ``--repeats`` training sets of ``--rows`` rows; per training set and family the SCM
  ``{X0: RootDistribution("gaussian"), X1, X2: family}`` is fitted (``--draws`` draws) and
  ``attribute_anomalies(num_mc_samples=--mc-samples)`` run; does the equal-tailed 90 % interval
  cover the truth, its width, and the fit time per non-root node.

Run from the repository root::

    python benchmarks/gp_calibration.py                       # 10 repeats at n = 1000, a few minutes
    python benchmarks/gp_calibration.py --repeats 2 --rows 300 --outliers 3   # smoke
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bayesrca.scm as scm_module  # noqa: E402
from bayesrca.mechanisms.registry import default_candidates as _CANDIDATES  # noqa: E402
from simulate import TrueSCM  # noqa: E402

CI_PROB = 0.9


class TaskChain(TrueSCM):
    """The chain of issue 16: tanh and square into X1, softplus into X2, Gaussian noise."""

    def __post_init__(self) -> None:
        self.order = ["X0", "X1", "X2"]
        self.sigma = {"X0": 1.0, "X1": 0.3, "X2": 0.3}
        self.terms = {n: [] for n in self.order}
        self.scale = {n: 1.0 for n in self.order}
        self.offset = {n: 0.0 for n in self.order}

    def _part(self, n, values):
        if n == "X1":
            x = values["X0"]
            return np.tanh(2 * x) + 0.5 * x**2
        if n == "X2":
            return np.logaddexp(0.0, values["X1"])
        return 0.0


def _with_gp(y, is_root):
    from bayesrca.mechanisms import GPANM

    out = _CANDIDATES(y, is_root)
    return out if is_root else out + [GPANM("gaussian"), GPANM("bootstrap")]


def families(name: str):
    import bayesrca as br

    if name == "spline":
        return br.SplineANM("gaussian")
    if name == "spline_bootstrap":
        return br.SplineANM("bootstrap")
    if name == "gp":
        return br.GPANM("gaussian")
    if name == "gp_bootstrap":
        return br.GPANM("bootstrap")
    raise ValueError(name)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scm", choices=["chain", "random"], default="chain")
    parser.add_argument("--families", nargs="+", default=["spline", "gp"],
                        help="spline, spline_bootstrap, gp, gp_bootstrap, auto, auto_gp (auto with GPANM candidates)")
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--outliers", type=int, default=6)
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--mc-samples", type=int, default=4000)
    parser.add_argument("--truth-mc", type=int, default=1_000_000)
    parser.add_argument("--shift", type=float, nargs=2, default=(3.0, 4.0))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="CSV of the trials")
    args = parser.parse_args(argv)

    import bayesrca as br

    graph = nx.DiGraph([("X0", "X1"), ("X1", "X2")])
    scm = TaskChain(graph, "nonlinear", "gaussian", seed=1) if args.scm == "chain" else TrueSCM(graph, "nonlinear", "gaussian", seed=1)
    target = "X2"
    reference = scm.reference_target(target)
    rows, truth, its, floored = [], [], [], []
    t0 = time.perf_counter()
    for k in range(args.outliers):
        cause = scm.order[k % 3]
        found = None
        for attempt in range(20):
            found = scm.inject(target, cause, np.random.default_rng([args.seed, 1000 + k, attempt]), shift=tuple(args.shift),
                               reference=reference)
            if found is not None:
                break
        if found is None:
            raise RuntimeError(f"no outlier caused by {cause}")
        row, noise = found
        phi, it, v = scm.true_contributions(target, noise, num_mc=args.truth_mc, return_values=True)
        rows.append(row)
        truth.append(phi)
        its.append(it)
        floored.append(bool(np.any(v <= math.log(1.0 / args.truth_mc) + 1e-9)))
        print(f"outlier {k}: cause {cause}, values {row.iloc[0].round(2).to_dict()}, truth {({n: round(p, 2) for n, p in phi.items()})}, "
              f"IT {it:.2f}{' (a coalition at the MC floor)' if floored[-1] else ''}", flush=True)
    outliers = pd.concat(rows, ignore_index=True)
    print(f"truth: {time.perf_counter() - t0:.0f} s", flush=True)

    trials = []
    for r in range(args.repeats):
        train = scm.sample(args.rows, np.random.default_rng([args.seed, 7, args.rows, r]))
        for fam in args.families:
            fit_s = {}
            if fam.startswith("auto"):  # "auto": today's candidates; "auto_gp": GPANM added (patched here only)
                scm_module.default_candidates = _with_gp if fam == "auto_gp" else _CANDIDATES
                model = br.BayesianSCM(graph, mechanisms="auto", num_draws=args.draws)
            else:
                mechs = {"X0": br.RootDistribution("gaussian"), "X1": families(fam), "X2": families(fam)}
                model = br.BayesianSCM(graph, mechanisms=mechs, num_draws=args.draws)
            start = time.perf_counter()
            model.fit(train, seed=r)
            scm_module.default_candidates = _CANDIDATES
            total_fit = time.perf_counter() - start
            if fam.startswith("auto"):
                print(f"  {fam}: {({n: model.mechanisms_[n].describe() for n in ('X1', 'X2')})}", flush=True)
            for node in ("X1", "X2"):  # time of one node's fit alone
                mech = model.mechanisms_[node].clone()
                pa = train[[p for p in graph.predecessors(node)]].to_numpy()
                s = time.perf_counter()
                from bayesrca._random import seeded

                with seeded(r):
                    mech.fit(train[node].to_numpy(), pa, num_draws=args.draws)
                fit_s[node] = time.perf_counter() - s
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = br.attribute_anomalies(model, target, outliers, seed=r, num_mc_samples=args.mc_samples)
            att_s = time.perf_counter() - start
            summary = res.summary(ci_prob=CI_PROB)
            it_summary = res.it_score_summary(ci_prob=CI_PROB)
            for rec in summary.itertuples(index=False):
                k = int(rec.anomaly)
                t = truth[k][rec.node]
                trials.append(dict(repeat=r, family=fam, outlier=k, cause=scm.order[k % 3], node=rec.node, quantity="contribution",
                                   truth=t, median=rec.median, lower=rec.lower, upper=rec.upper, floored=floored[k],
                                   covered=rec.lower <= t <= rec.upper, width=rec.upper - rec.lower,
                                   fit_s=total_fit, fit_node_s=np.mean(list(fit_s.values())), attribution_s=att_s))
            for rec in it_summary.itertuples(index=False):
                k = int(rec.anomaly)
                trials.append(dict(repeat=r, family=fam, outlier=k, cause=scm.order[k % 3], node="IT", quantity="it_score",
                                   truth=its[k], median=rec.median, lower=rec.lower, upper=rec.upper, floored=floored[k],
                                   covered=rec.lower <= its[k] <= rec.upper, width=rec.upper - rec.lower,
                                   fit_s=total_fit, fit_node_s=np.mean(list(fit_s.values())), attribution_s=att_s))
        print(f"repeat {r} done ({time.perf_counter() - t0:.0f} s)", flush=True)
    frame = pd.DataFrame(trials)
    if args.out:
        frame.to_csv(args.out, index=False)
    ok = frame[~frame.floored]
    print(f"\n{args.scm} SCM, n = {args.rows}, {args.repeats} training sets, {args.outliers} outliers "
          f"({int(frame.groupby('outlier').floored.first().sum())} with a truth coalition at the MC floor, excluded below)")
    table = ok.groupby(["family", "quantity"]).agg(coverage=("covered", "mean"), width=("width", "mean"),
                                                  abs_error=("median", lambda s: 0.0), cells=("covered", "size"))
    table["abs_error"] = ok.assign(e=(ok["median"] - ok["truth"]).abs()).groupby(["family", "quantity"]).e.mean()
    print(table.round(3).to_string())
    by_cause = ok[ok.quantity == "contribution"].groupby(["family", "cause"]).agg(coverage=("covered", "mean"),
                                                                                width=("width", "mean"))
    print(by_cause.round(3).to_string())
    times = frame.groupby("family").agg(fit_node_s=("fit_node_s", "mean"), fit_scm_s=("fit_s", "mean"),
                                        attribution_s=("attribution_s", "mean"))
    print(times.round(3).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
