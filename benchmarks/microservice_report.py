"""Report of ``benchmarks/microservice_speed.py``: timing rows, targets and verdicts, tables, outputs."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import pandas as pd
from harness.outputs import Outputs, environment, utc_now
from harness.stats import median
from harness.tables import fmt, heading, markdown_rows
from harness.timing import load_average

TARGET = "Website"
CI_PROB = 0.9  # bayesrca [5 %, 95 %]; DoWhy confidence_level=0.95 gives the same percentiles.
# Targets: bayesrca total <= POINT_TARGET x DoWhy point total; >= BOOT_TARGET x faster than bootstrap.
POINT_TARGET = 0.25
BOOT_TARGET = 20.0
TIMING_COLUMNS = [  # (row key, table title)
    ("method", "method"),
    ("fit_s", "fit_s"),
    ("attribution_s", "attribution_s"),
    ("total_s", "total_s"),
    ("ratio_to_dowhy_point", "ratio_to_dowhy_point"),
    ("intervals", "intervals"),
    ("top_cause", "top cause"),
    ("top_value", "top-cause value"),
    ("runs", "runs"),
    ("total_min_s", "total_min_s"),
]


@dataclass
class Runs:
    """The repeats of one timed block: fit and attribution seconds, and the first repeat's payload."""

    label: str
    fits: list = field(default_factory=list)
    attributions: list = field(default_factory=list)
    first: object = None

    def add(self, fit_s: float, attribution_s: float, payload: object) -> None:
        """One repeat; only the first payload is kept."""
        self.fits.append(fit_s)
        self.attributions.append(attribution_s)
        if self.first is None:
            self.first = payload

    @property
    def totals(self) -> list:
        """Fit + attribution seconds per repeat."""
        return [f + a for f, a in zip(self.fits, self.attributions)]

    def row(self, method: str, intervals: str, top_cause: str, top_value: float) -> dict:
        """One row of the timing table: medians over repeats plus the fastest total."""
        return dict(method=method, fit_s=median(self.fits), attribution_s=median(self.attributions),
                    total_s=median(self.totals), total_min_s=min(self.totals), intervals=intervals,
                    top_cause=top_cause, top_value=top_value, runs=len(self.totals))


def first_anomaly_summary(result) -> tuple[pd.DataFrame, str]:
    """bayesrca's summary of the first anomaly row (indexed by node, by decreasing median) and its engine."""
    table = result.summary(ci_prob=CI_PROB)
    table = table[table["anomaly"] == table["anomaly"].iloc[0]]
    return table.set_index("node"), result.method_info.get("engine", "?")


def target_lines(args: argparse.Namespace, dowhy_total: float, boot_total: float | None) -> list[str]:
    """The two speed targets, in seconds."""
    boot = (f"({args.bootstrap} resamples; total <= {boot_total / BOOT_TARGET:.2f} s)" if boot_total
            else "(bootstrap not run)")
    return [f"- Target 1: bayesrca total <= {POINT_TARGET:g} x DoWhy point-estimate total "
            f"({POINT_TARGET * dowhy_total:.2f} s)",
            f"- Target 2: bayesrca >= {BOOT_TARGET:g} x faster than DoWhy bootstrap " + boot]


def verdict_lines(rows: list[dict], boot_total: float | None) -> list[str]:
    """PASS / MISS of both targets for every bayesrca row."""
    verdicts = []
    for row in rows:
        if not row["method"].startswith("bayesrca"):
            continue
        ratio = row["ratio_to_dowhy_point"]
        v1 = "PASS" if ratio <= POINT_TARGET else "MISS"
        verdicts.append(f"- {row['method']}: target 1 {v1} ({ratio:.3f} x DoWhy point)")
        if boot_total:
            speedup = boot_total / row["total_s"]
            v2 = "PASS" if speedup >= BOOT_TARGET else "MISS"
            verdicts.append(f"- {row['method']}: target 2 {v2} ({speedup:.1f} x faster than DoWhy bootstrap)")
        else:
            verdicts.append(f"- {row['method']}: target 2 n/a (bootstrap skipped)")
    return verdicts


def timing_table(rows: list[dict]) -> str:
    """The timing rows as markdown (seconds with 2 decimals, ratios and values with 3)."""
    return markdown_rows([title for _, title in TIMING_COLUMNS], [
        [r["method"], fmt(r["fit_s"], 2), fmt(r["attribution_s"], 2), fmt(r["total_s"], 2),
         fmt(r["ratio_to_dowhy_point"], 3), r["intervals"], r["top_cause"], fmt(r["top_value"], 3), r["runs"],
         fmt(r["total_min_s"], 2)]
        for r in rows])


def contributions_table(args: argparse.Namespace, dowhy_values: dict, boot: dict | None,
                        summaries: dict) -> tuple[str, list[dict]]:
    """Per node (by decreasing DoWhy contribution): every method's contribution; markdown and CSV records."""
    header = ["node", "DoWhy point"]
    if boot is not None:
        header.append(f"DoWhy bootstrap {args.bootstrap} median [5%, 95%]")
    for mech in args.mechanisms:
        header += [f"bayesrca {mech} median [5%, 95%]", f"bayesrca {mech} prob_top"]
    lines, records = [], []
    for node in sorted(dowhy_values, key=dowhy_values.get, reverse=True):
        line = [node, fmt(dowhy_values[node])]
        rec = {"node": node, "dowhy_point": dowhy_values[node]}
        if boot is not None:
            med, lo, hi = boot[node]
            line.append(f"{fmt(med)} [{fmt(lo)}, {fmt(hi)}]")
            rec.update(dowhy_boot_median=med, dowhy_boot_lo=lo, dowhy_boot_hi=hi)
        for mech in args.mechanisms:
            s = summaries[mech].loc[node]
            line += [f"{fmt(s['median'])} [{fmt(s['lower'])}, {fmt(s['upper'])}]", fmt(s["prob_top"], 3)]
            rec.update({f"bayesrca_{mech}_median": s["median"], f"bayesrca_{mech}_lower": s["lower"],
                        f"bayesrca_{mech}_upper": s["upper"], f"bayesrca_{mech}_prob_top": s["prob_top"]})
        lines.append(line)
        records.append(rec)
    return markdown_rows(header, lines), records


def build_report(args: argparse.Namespace, normal: pd.DataFrame, anomaly: pd.DataFrame, point: Runs,
                 boot: Runs | None, bayes: dict, rss: dict, load_start: float) -> tuple[str, list[dict], list[dict]]:
    """The markdown report, the timing rows and the contribution records.

    ``bayes`` maps each mechanisms setting to its :class:`Runs`, whose payload is
    :func:`first_anomaly_summary` of the first repeat.
    """
    dowhy_values = point.first
    top = max(dowhy_values, key=dowhy_values.get)
    rows = [point.row("DoWhy point", "none", top, dowhy_values[top])]
    dowhy_total = rows[0]["total_s"]
    if boot is not None:
        top = max(boot.first, key=lambda n: boot.first[n][0])
        rows.append(boot.row("DoWhy bootstrap", f"bootstrap {args.bootstrap}", top, boot.first[top][0]))
    boot_total = rows[-1]["total_s"] if boot is not None else None
    summaries = {mech: runs.first[0] for mech, runs in bayes.items()}
    engines = {mech: runs.first[1] for mech, runs in bayes.items()}
    for mech, table in summaries.items():
        first = table.iloc[0]  # sorted by median, descending
        rows.append(bayes[mech].row(f"bayesrca ({mech})", f"posterior {args.num_draws} draws", first.name,
                                    float(first["median"])))
    for row in rows:
        row["ratio_to_dowhy_point"] = row["total_s"] / dowhy_total
    contrib_md, records = contributions_table(args, dowhy_values, boot.first if boot is not None else None, summaries)

    settings = (
        f"{len(normal)} training rows, {len(anomaly)} anomaly row(s) (contributions: first row), target "
        f"'{TARGET}'; bayesrca num_draws={args.num_draws}, num_mc_samples={args.num_mc_samples}, "
        f"seed={args.seed}, engine(s) {', '.join(f'{m}: {engines[m]}' for m in args.mechanisms)}; "
        f"DoWhy bootstrap resamples={args.bootstrap}; repeats={args.repeats} "
        f"(bootstrap {args.bootstrap_repeats if args.bootstrap else 0}){'; SMOKE settings' if args.smoke else ''}"
    )
    import torch

    env = (f"{environment(threads=torch.get_num_threads())}; 1-min load average {load_start:.2f} at start, "
           f"{load_average():.2f} at end")
    rss_line = "Peak RSS (ru_maxrss, process high-water mark): " + ", ".join(f"{k} {v:.0f} MiB" for k, v in rss.items())
    notes = (
        "Times are medians over repeats in seconds (total_s = median of per-repeat fit + attribution; "
        "total_min_s = fastest repeat, less sensitive to other load on the machine). "
        "DoWhy fit includes auto.assign_causal_mechanisms; "
        + (f"DoWhy bootstrap fit = one assignment + {args.bootstrap} refits on 75 % subsets, attribution = "
           f"the {args.bootstrap} attribution calls; its value is DoWhy's geometric-median summary. "
           if args.bootstrap else "")
        + "bayesrca top-cause value is the posterior median; "
        "intervals are equal-tailed 90 % (5 %-95 % percentiles) for both libraries."
    )
    report = "\n\n".join([
        heading("Microservice RCA speed benchmark", args.smoke),
        f"Run {utc_now()}. {env}.",
        f"Settings: {settings}.",
        "### Targets\n\n" + "\n".join(target_lines(args, dowhy_total, boot_total)),
        "### Timings\n\n" + timing_table(rows),
        notes,
        "### Verdicts\n\n" + "\n".join(verdict_lines(rows, boot_total)),
        rss_line,
        "### Contributions to the Website outlier score (first anomaly)\n\n" + contrib_md,
    ])
    return report, rows, records


def write_outputs(args: argparse.Namespace, report: str, timings: pd.DataFrame, contributions: pd.DataFrame,
                  runs: pd.DataFrame) -> None:
    """``microservice_speed.{md,csv}``, ``microservice_contributions.csv`` and ``microservice_speed_runs.csv``."""
    from harness.logs import log

    out = Outputs.create(args.out, args.smoke)
    out.write_text("microservice_speed", report + "\n")
    out.write_csv("microservice_speed", timings)
    out.write_csv("microservice_contributions", contributions)
    out.write_csv("microservice_speed_runs", runs)
    log(f"wrote {out.folder}/microservice_speed{out.suffix}.md, .csv, microservice_contributions{out.suffix}.csv, "
        "runs csv")
