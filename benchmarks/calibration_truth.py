"""Importance-sampling truth of ``benchmarks/calibration.py``: exact-in-expectation coalition values for far outliers.

Plain Monte Carlo with M samples cannot see a probability below about 1/M, so it cannot give the true
v(S) = log P(tau(X_t) >= tau(x_t) | N_S = n_S) of an outlier whose root cause is shifted 8-10 noise sd
(true values down to e^-40). :func:`is_truth` estimates every v(S) under the TRUE SCM
(:class:`simulate.TrueSCM`, additive noise) with

* **conditional Monte Carlo on the target's noise**: when N_t is free, the event given the other noises
  is ``N_t >= hi - m_t`` or ``N_t <= lo - m_t`` (m_t = the target's parental part), whose probability is
  the true noise law's log tail in closed form (Gaussian or exponential noise), so no sample is wasted;
* **importance sampling of the other free noises** from a *defensive mixture*: with weight ``alpha0``
  the true noise law itself, otherwise one noise coordinate (or, in a last group of components, every
  coordinate together) replaced by the same law inflated by a factor ``s`` in ``scales``. Every sample
  serves every coalition (common random numbers): the weight of coalition S is p(n_F) / q_F(n_F), with
  q_F the mixture's marginal over S's free noises F, so weights are bounded by ``1 / alpha0``;
* the event's two thresholds of the two-sided median-CDF score: the outlier x_t and its mirror
  quantile, solved on a pilot sample of the same estimator (F(lo) = P(X_t >= x_t) for an upper outlier).

Its own error comes back with it: delta-method standard errors of every v(S), of the Shapley values and
of the IT score from the samples' covariance across coalitions (the common random numbers make them
correlated), and the mirror check log(P(X_t <= lo) / P(X_t >= hi)) (0 when the mirror quantile is exact).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize, special
from simulate import TrueSCM, exact_shapley

SCALES = (2.0, 4.0, 8.0)
ALPHA0 = 0.3


# --------------------------------------------------------------------------------------------
# the true noise laws (N = sigma * standardised noise, see simulate._noise)
# --------------------------------------------------------------------------------------------
def _standard(kind: str, z: np.ndarray) -> np.ndarray:
    if kind == "gaussian":
        return z
    if kind == "exponential":
        return z + 1.0  # Exp(1) variable
    raise NotImplementedError(f"the importance-sampling truth supports gaussian and exponential noise, not {kind!r}")


def log_ratio(kind: str, z: np.ndarray, scale: float) -> np.ndarray:
    """log q_s(z) / p(z) of the law inflated by ``scale`` at standardised noise ``z`` (-inf off p's support)."""
    u = _standard(kind, z)
    if kind == "gaussian":
        return -math.log(scale) + 0.5 * u**2 * (1.0 - scale**-2)
    with np.errstate(invalid="ignore"):
        return np.where(u >= 0, -math.log(scale) + u * (1.0 - 1.0 / scale), -np.inf)


def draw(kind: str, size, rng: np.random.Generator, scale: float = 1.0) -> np.ndarray:
    """Standardised noise drawn from the law inflated by ``scale`` (1: the true law)."""
    if kind == "gaussian":
        return scale * rng.standard_normal(size)
    if kind == "exponential":
        return scale * rng.exponential(1.0, size) - 1.0
    return _standard(kind, np.zeros(size))  # raises


def log_sf(kind: str, z: np.ndarray) -> np.ndarray:
    """log P(Z >= z) of the standardised noise."""
    if kind == "gaussian":
        return special.log_ndtr(-z)
    u = _standard(kind, z)
    return np.where(u > 0, -u, 0.0)


def log_cdf(kind: str, z: np.ndarray) -> np.ndarray:
    """log P(Z <= z) of the standardised noise."""
    if kind == "gaussian":
        return special.log_ndtr(z)
    u = _standard(kind, z)
    with np.errstate(divide="ignore"):
        return np.where(u > 0, np.log(-np.expm1(-np.maximum(u, 1e-300))), -np.inf)


# --------------------------------------------------------------------------------------------
# the estimator
# --------------------------------------------------------------------------------------------
class _Mixture:
    """The defensive mixture over the drawn noises and the coalition weights it implies.

    ``free`` (coalitions, players) marks the noises each coalition draws; ``active`` (players) the
    coordinates the mixture inflates (the target's noise is integrated in closed form, never drawn).
    """

    def __init__(self, scm: TrueSCM, players: list, free: np.ndarray, active: np.ndarray, scales=SCALES,
                 alpha0: float = ALPHA0):
        self.scm, self.players, self.scales = scm, players, tuple(scales)
        self.free, self.active = free, np.flatnonzero(active)
        k, L = len(self.active), len(self.scales)
        # components: 0 = true law; then (active coordinate i, scale l); then (scale l) every active one inflated
        self.alpha = np.concatenate([[alpha0], np.full(k * L + L, (1 - alpha0) / (k * L + L))])

    def sample(self, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Standardised noises (players, size) and log q_s/p per (player, scale, sample); 0 off the active ones."""
        k, L = len(self.active), len(self.scales)
        comp = rng.choice(len(self.alpha), size=size, p=self.alpha)
        z = np.stack([draw(self.scm.noise, size, rng) for _ in self.players])
        logr = np.zeros((len(self.players), L, size))
        for i, j in enumerate(self.active):
            for l, s in enumerate(self.scales):
                hit = (comp == 1 + i * L + l) | (comp == 1 + k * L + l)
                z[j, hit] = draw(self.scm.noise, int(hit.sum()), rng, s)
            for l, s in enumerate(self.scales):
                logr[j, l] = log_ratio(self.scm.noise, z[j], s)
        return z, logr

    def log_weights(self, logr: np.ndarray) -> np.ndarray:
        """log p(n_F) / q_F(n_F) per coalition (coalitions, size), F = the coalition's free noises."""
        k, L = len(self.active), len(self.scales)
        single = self.alpha[1 : 1 + k * L].reshape(k, L)
        joint = self.alpha[1 + k * L :]
        patterns, inverse = np.unique(self.free[:, self.active], axis=0, return_inverse=True)
        out = np.zeros((len(patterns), logr.shape[-1]))
        for c, drawn in enumerate(patterns):  # drawn: which active coordinates this coalition draws
            if not drawn.any():
                continue
            terms = [np.full(logr.shape[-1], math.log(self.alpha[0] + single[~drawn].sum()))]
            terms += [math.log(single[i, l]) + logr[j, l] for i, j in enumerate(self.active) if drawn[i]
                      for l in range(L)]
            terms += [math.log(joint[l]) + logr[self.active[drawn], l].sum(axis=0) for l in range(L)]
            terms = np.stack(terms)
            top = terms.max(axis=0)  # finite: the first term is
            out[c] = -(top + np.log(np.exp(terms - top).sum(axis=0)))
        return out[np.ravel(inverse)]


def _target_parts(scm: TrueSCM, target, players: list, masks: np.ndarray, fixed: dict, z: np.ndarray):
    """The target's parental part m_t (coalitions, size) and its noise (coalitions, size).

    The parental part does not depend on the target's own noise: it is propagated once per pattern
    of the other players' bits.
    """
    t = players.index(target)
    rest = masks.copy()
    rest[:, t] = False
    patterns, inverse = np.unique(rest, axis=0, return_inverse=True)
    noise = {p: np.where(patterns[:, k, None], fixed.get(p, 0.0), scm.sigma[p] * z[k][None, :])
             for k, p in enumerate(players)}
    values = scm.propagate(noise, players)
    part = (values[target] - noise[target])[np.ravel(inverse)]
    noise_t = np.where(masks[:, t, None], fixed.get(target, 0.0), 0.0)
    return part, noise_t


def _log_tail(scm: TrueSCM, target, masks: np.ndarray, part, noise_t, y: float, t: int, upper: bool) -> np.ndarray:
    """log P(X_t >= y | sample) (``upper``) or log P(X_t <= y | sample), conditional on the target's noise where free."""
    free_t = ~masks[:, t]
    out = np.empty(part.shape)
    z = (y - part[free_t]) / scm.sigma[target]
    out[free_t] = log_sf(scm.noise, z) if upper else log_cdf(scm.noise, z)
    x = part[~free_t] + noise_t[~free_t]
    with np.errstate(divide="ignore"):
        out[~free_t] = np.log((x >= y) if upper else (x <= y))
    return out


def _log_event(scm: TrueSCM, target, masks: np.ndarray, part, noise_t, lo: float, hi: float, t: int, sides=(True, True)):
    """log P(X_t <= lo or X_t >= hi | sample) (``sides``: which of the lower and upper tail count)."""
    if not sides[1]:
        return _log_tail(scm, target, masks, part, noise_t, lo, t, False)
    if not sides[0]:
        return _log_tail(scm, target, masks, part, noise_t, hi, t, True)
    return np.logaddexp(_log_tail(scm, target, masks, part, noise_t, lo, t, False),
                        _log_tail(scm, target, masks, part, noise_t, hi, t, True))


def _mirror(scm: TrueSCM, target, players: list, x: float, median: float, spread: float, num: int, seed: int,
            mixture: _Mixture, chunk: int) -> tuple[float, float]:
    """(lo, hi) of the event: x and the quantile of the same tail probability on the other side (pilot IS)."""
    t = players.index(target)
    empty = np.zeros((1, len(players)), dtype=bool)
    rng, logw, part = np.random.default_rng([seed, 1]), [], []
    for start in range(0, num, chunk):  # keep only the weights and the target's parental part
        z, logr = mixture.sample(min(chunk, num - start), rng)
        logw.append(mixture.log_weights(logr))
        part.append(_target_parts(scm, target, players, empty, {}, z)[0])
    logw, part = np.hstack(logw), np.hstack(part)
    noise_t = np.zeros_like(part)  # not used: the target's noise is free
    upper = x >= median
    log_p = special.logsumexp(logw + _log_event(scm, target, empty, part, noise_t, x, x, t,
                                                sides=(not upper, upper))) - math.log(num)

    def gap(y: float) -> float:  # log P(other tail beyond y) - log p: increases towards the median
        ev = _log_event(scm, target, empty, part, noise_t, y, y, t, sides=(upper, not upper))
        return float(special.logsumexp(logw + ev) - math.log(num) - log_p)

    a, b = median + (-1 if upper else 1) * 200 * spread, median  # gap(a) < 0 <= gap(b)
    if not gap(a) < 0:  # the other tail is never that thin (cannot happen for the settings here)
        return ((a, x) if upper else (x, a)), 0.0
    y = optimize.brentq(lambda u: min(max(gap(u), -700.0), 700.0), a, b, xtol=1e-12 * max(1.0, abs(median), spread))
    # its standard error: var(log p_hat - log G_hat(y)) / slope^2 (delta method on the pilot samples)
    own = logw + _log_event(scm, target, empty, part, noise_t, x, x, t, sides=(not upper, upper))
    other = logw + _log_event(scm, target, empty, part, noise_t, y, y, t, sides=(upper, not upper))
    ya, yb = np.exp(own - own.max()), np.exp(other - other.max())
    ga, gb = ya / ya.mean(), yb / yb.mean()
    var = float(np.var(ga - gb) / num)
    h = 1e-3 * spread
    slope = abs(gap(y + h) - gap(y - h)) / (2 * h)
    se = math.sqrt(var) / slope if slope > 0 else math.inf
    return ((y, x) if upper else (x, y)), se


def shapley_matrix(n: int) -> np.ndarray:
    """C (players, 2**n) with phi = C @ v (exact Shapley values, bit j = player j)."""
    return np.stack([exact_shapley(e, n) for e in np.eye(2**n)], axis=1)


def is_truth(scm: TrueSCM, target, anomaly_noise: dict, *, num_samples: int = 1_000_000, seed: int = 7,
             chunk: int = 50_000, pilot: int | None = None, scales=SCALES, alpha0: float = ALPHA0,
             reference: np.ndarray | None = None) -> dict:
    """Importance-sampling truth of one outlier under the true SCM.

    Parameters
    ----------
    scm : simulate.TrueSCM
        Additive gaussian or exponential noise.
    target
        The target node.
    anomaly_noise : dict
        The outlier's noise values (node -> float).
    num_samples : int
        Samples of the main pass (every coalition shares them).
    pilot : int, optional
        Samples of the pilot pass (empty coalition only, independent of the main pass) that solves the
        mirror threshold; default ``2 * num_samples``.
    reference : numpy.ndarray, optional
        Sorted samples of the target's marginal (its median and sd bracket the mirror threshold).

    Returns
    -------
    dict
        ``phi`` (node -> value), ``it``, ``v`` (2**n coalition values, bit j = players[j]), ``se_v``,
        ``se_phi`` (node -> se), ``se_it`` (all three include the error of the solved mirror threshold,
        ``se_threshold``), ``mirror_check`` (log P(X_t <= lo) / P(X_t >= hi) on the
        empty coalition, 0 when the thresholds are exact) with ``se_mirror``, ``lo``, ``hi``.
    """
    players = scm.players(target)
    n, t = len(players), players.index(target)
    masks = np.array([[(i >> j) & 1 for j in range(n)] for i in range(2**n)], dtype=bool)
    free = ~masks
    free[:, t] = False  # the target's noise is integrated in closed form, never drawn
    active = np.arange(n) != t
    mixture = _Mixture(scm, players, free, active, scales, alpha0)
    if reference is None:
        reference = scm.reference_target(target)
    x = float(scm.propagate(anomaly_noise, players)[target])
    median, spread = float(np.median(reference)), float(reference.std())
    (lo, hi), se_threshold = _mirror(scm, target, players, x, median, spread, pilot or 2 * num_samples, seed,
                                     _Mixture(scm, players, free[:1], active, scales, alpha0), chunk)
    upper = x >= median  # the solved threshold is lo for an upper outlier, hi for a lower one
    step = 0.02 * spread  # central difference of every v(S) in the solved threshold (common random numbers)
    total_moved = np.zeros((2, 2**n))
    fixed = {p: float(anomaly_noise[p]) for p in players}
    rows = 2**n + 2  # every coalition, then the empty coalition's upper and lower tail apart
    total, outer, shift = np.zeros(rows), np.zeros((rows, rows)), None
    rng = np.random.default_rng([seed, 2])
    for start in range(0, num_samples, chunk):
        size = min(chunk, num_samples - start)
        z, logr = mixture.sample(size, rng)
        logw = mixture.log_weights(logr)
        part, noise_t = _target_parts(scm, target, players, masks, fixed, z)
        up = logw + _log_tail(scm, target, masks, part, noise_t, hi, t, True)
        low = logw + _log_tail(scm, target, masks, part, noise_t, lo, t, False)
        logy = np.vstack([np.logaddexp(up, low), up[:1], low[:1]])  # every coalition; the empty one's two tails
        kept, solved = (up, lo) if upper else (low, hi)  # the tail whose threshold came from the pilot moves
        moved_logy = [np.logaddexp(kept, logw + _log_tail(scm, target, masks, part, noise_t, solved + d, t, not upper))
                      for d in (step, -step)]
        if shift is None:  # scale each row by its pilot maximum (tail probabilities of e^-40 and below)
            top = logy.max(axis=1)
            shift = np.where(np.isfinite(top), top, 0.0)
        scaled = logy - shift[:, None]
        if scaled.max() > 600:
            raise FloatingPointError("importance weights far above the first chunk's: raise `chunk`")
        y = np.exp(scaled)
        total += y.sum(axis=1)
        outer += y @ y.T
        for i, ly in enumerate(moved_logy):
            total_moved[i] += np.exp(ly - shift[: 2**n, None]).sum(axis=1)
    mean = total / num_samples
    cov = (outer / num_samples - np.outer(mean, mean)) / num_samples  # covariance of the row means
    with np.errstate(divide="ignore", invalid="ignore"):
        log_v = np.log(mean) + shift
        rel = cov / np.outer(mean, mean)  # delta method: cov of log means
    v = log_v[: 2**n].copy()
    v[-1] = 0.0  # all noise kept: the outlier itself
    v[0] = min(v[0], 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        dv = (np.log(total_moved[0]) - np.log(total_moved[1])) / (2 * step)  # dv(S) / d threshold
    dv = np.nan_to_num(dv, nan=0.0)
    dv[-1] = 0.0
    # the pilot is independent of the main pass: the threshold's error adds dv dv^T se^2
    rel_v = rel[: 2**n, : 2**n] + np.outer(dv, dv) * se_threshold**2
    rel_v[-1, :] = rel_v[:, -1] = 0.0
    C = shapley_matrix(n)
    phi = C @ v
    se_phi = np.sqrt(np.maximum(np.einsum("js,st,jt->j", C, np.nan_to_num(rel_v, nan=np.inf), C), 0.0))
    se_v = np.sqrt(np.maximum(np.diag(rel_v), 0.0))
    d = np.array([1.0, -1.0])
    mirror_rel = rel[-2:, -2:]
    return {
        "phi": dict(zip(players, phi)), "it": float(-v[0]), "v": v, "se_v": se_v,
        "se_phi": dict(zip(players, se_phi)), "se_it": float(se_v[0]),
        "mirror_check": float(log_v[-1] - log_v[-2]), "se_mirror": float(math.sqrt(max(d @ mirror_rel @ d, 0.0))),
        "lo": lo, "hi": hi, "se_threshold": se_threshold, "num_samples": num_samples,
    }


__all__ = ["ALPHA0", "SCALES", "is_truth", "log_cdf", "log_ratio", "log_sf", "shapley_matrix"]
