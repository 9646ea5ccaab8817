"""Settings, outlier bands and the exact truth of ``benchmarks/calibration.py``.

Each setting has ONE true SCM (``TrueSCM(graph, mechanism, noise, seed=1)``); each band of outliers
(the root cause's noise shifted by LO-HI noise sd) has ``--outliers`` fixed outliers, outlier k caused
by ancestor k mod #ancestors. Their truth: closed form for linear-Gaussian, otherwise the
importance-sampling estimator of ``calibration_truth.is_truth`` with its own standard errors.
"""

from __future__ import annotations

import argparse
import json
import math
import zlib
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
from calibration_truth import is_truth
from harness.logs import log
from simulate import TrueSCM

SETTINGS = {  # name -> (mechanism, noise); the order fixes the seeds (append only)
    "linear_gaussian": ("linear", "gaussian"),
    "linear_exponential": ("linear", "exponential"),
    "nonlinear_gaussian": ("nonlinear", "gaussian"),
    "nonlinear_exponential": ("nonlinear", "exponential"),
}
BANDS = {"moderate": (3.0, 4.0), "far": (8.0, 10.0)}  # root-cause noise shift in noise sd
TRUTH_VERSION = 1  # part of the cache key: bump when the truth estimator changes


def parse_band(text: str) -> tuple[str, float, float]:
    """``"moderate"``, ``"far"`` or ``"LO-HI"`` (noise sd) -> (label, lo, hi); an argparse type."""
    if text in BANDS:
        return (text, *BANDS[text])
    try:
        lo, hi = (float(x) for x in text.split("-"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a band is one of {list(BANDS)} or 'LO-HI' (e.g. 5-6), got {text!r}") from None
    if not 0 < lo <= hi:
        raise argparse.ArgumentTypeError(f"a band needs 0 < LO <= HI, got {text!r}")
    return (f"{lo:g}-{hi:g}sd", lo, hi)


def band_seed(label: str) -> list[int]:
    """The extra seed words of a band: none for ``moderate`` (the outliers of the earlier protocol)."""
    if label == "moderate":
        return []
    return [1] if label == "far" else [zlib.crc32(label.encode())]


class TruthCache:
    """Optional JSON cache of the truths (``--truth-cache``): the same outliers need no second estimate."""

    def __init__(self, path: Path | None):
        self.path = path
        self.data = json.loads(path.read_text()) if path is not None and path.exists() else {}

    @staticmethod
    def key(name: str, noise: dict, args) -> str:
        values = ",".join(f"{k}={noise[k]:.12g}" for k in sorted(noise))
        return f"v{TRUTH_VERSION}|{name}|{args.truth_mc}|{args.graph_seed}|{values}"

    def get(self, key: str) -> dict | None:
        return self.data.get(key)

    def put(self, key: str, truth: dict) -> None:
        if self.path is None:
            return
        self.data[key] = truth
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.data, default=float))


def exact_truth(scm: TrueSCM, name: str, target, noise: dict, reference: np.ndarray, args, seed: int) -> dict:
    """Truth of one outlier: contributions, IT, coalition values and the truth's own errors."""
    players = scm.players(target)
    if SETTINGS[name] == ("linear", "gaussian"):
        phi, it, v = scm.true_contributions(target, noise, return_values=True)
        zero = {p: 0.0 for p in players}
        return {"phi": phi, "it": it, "v": list(v), "se_phi": zero, "se_it": 0.0, "mirror_check": 0.0,
                "se_mirror": 0.0, "method": "closed form"}
    r = is_truth(scm, target, noise, num_samples=args.truth_mc, seed=seed, reference=reference)
    return {"phi": r["phi"], "it": r["it"], "v": list(r["v"]), "se_phi": r["se_phi"], "se_it": r["se_it"],
            "mirror_check": r["mirror_check"], "se_mirror": r["se_mirror"], "method": f"IS {args.truth_mc:.0e}"}


def make_setting(index: int, name: str, graph: nx.DiGraph, target, args, cache: TruthCache) -> dict:
    """The true SCM of a setting, its fixed outliers over all bands and their truth.

    Returns
    -------
    dict
        ``scm``, ``outliers`` (DataFrame, index 0..K-1 over bands in order), and per outlier (lists):
        ``band``, ``cause``, ``truth`` (dicts with ``phi``, ``it``, ``v``, ``se_phi``, ``se_it``,
        ``mirror_check``, ``se_mirror``, ``method``).
    """
    mechanism, noise_kind = SETTINGS[name]
    scm = TrueSCM(graph, mechanism, noise_kind, seed=1)
    ancestors = [n for n in scm.players(target) if n != target]
    reference = scm.reference_target(target)
    rows, bands, causes, truths = [], [], [], []
    for label, lo, hi in args.bands:
        for k in range(args.outliers):
            cause = ancestors[k % len(ancestors)]
            found, attempt = None, 0
            while found is None and attempt < 20:
                rng = np.random.default_rng([args.seed, index, *band_seed(label), 1000 + k, attempt])
                found = scm.inject(target, cause, rng, shift=(lo, hi), min_it=math.log(100), reference=reference)
                attempt += 1
            if found is None:
                raise RuntimeError(f"{name}, band {label}: no outlier with IT >= log 100 caused by {cause}")
            row, noise = found
            key = cache.key(name, noise, args)
            truth = cache.get(key)
            if truth is None:
                truth = exact_truth(scm, name, target, noise, reference, args, seed=7 + k)
                cache.put(key, truth)
            rows.append(row)
            bands.append(label)
            causes.append(cause)
            truths.append(truth)
            log(f"  {name} {label} outlier {k} (cause {cause}): true IT {truth['it']:.2f} +- {truth['se_it']:.3f} "
                f"({truth['method']}), max se of contributions {max(truth['se_phi'].values()):.3f}")
    return {"scm": scm, "outliers": pd.concat(rows, ignore_index=True), "band": bands, "cause": causes,
            "truth": truths}


__all__ = ["BANDS", "SETTINGS", "TruthCache", "band_seed", "exact_truth", "make_setting", "parse_band"]
