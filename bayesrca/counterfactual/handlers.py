"""Pyro effect handlers for counterfactual reasoning over the SCM program.

One small handler per idea, composable with Pyro's own (``condition``, ``replay``, ``trace``,
``plate``):

* :class:`AbductNoise` replaces every noise site by the noise that reproduces an observed row
  (abduction, the first step of a counterfactual);
* :class:`KeepNoise` keeps the abducted noise of a coalition's members and lets the other noise
  sites be drawn afresh (counterfactual noise replacement). Wrapped around
  ``pyro.poutine.replay`` with a trace of fresh noise, every coalition sees the same fresh draws
  (common random numbers);
* :class:`DropGaussianPart` samples only the non-Gaussian part of some noise sites, whose
  Gaussian part the caller integrates in closed form (conditional Monte Carlo);
* :class:`ProposeNoise` draws some noise sites from a proposal instead of their distribution (a
  draw of the distribution, transformed), for importance sampling of rare events;
* :class:`SwapMechanism` computes some nodes with other mechanisms (and their own noise) where a
  mask is True: the SCM whose mechanisms changed (distribution change);
* :class:`ImputeMissing` runs the program with the observed values of a row held fixed and its
  missing values drawn from their mechanisms, and records the log-likelihood of the observed
  values given the drawn ones (likelihood weighting of the missing values).

The noise handlers act only on sites tagged as noise sites by
:meth:`bayesrca.mechanisms.Mechanism.node_program`, :class:`SwapMechanism` on its mechanism
effect (:data:`bayesrca.mechanisms.base.MECHANISM_EFFECT`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import math

import torch
from pyro.distributions import constraints
from pyro.poutine.messenger import Messenger

from ..mechanisms.base import MECHANISM_EFFECT, NOISE_ROLE, Mechanism
from ..mechanisms.mixture import split_gaussian_part

__all__ = [
    "AbductNoise", "KeepNoise", "DropGaussianPart", "ProposeNoise", "SwapMechanism", "ImputeMissing", "abduct", "keep_noise",
]


def _is_noise(msg) -> bool:
    return msg["type"] == "sample" and (msg.get("infer") or {}).get("role") == NOISE_ROLE


class AbductNoise(Messenger):
    """Set each noise site to the noise that reproduces ``observed`` under every posterior draw.

    Parameters
    ----------
    observed : mapping of node to tensor
        Observed node values, broadcastable against the draw dimension (e.g. shape ``(K, 1)``
        for K anomalies). For a mechanism with an invertible noise the abducted noise is
        deterministic; a non-invertible mechanism draws it from its noise posterior.
    """

    def __init__(self, observed: Mapping[object, torch.Tensor]) -> None:
        super().__init__()
        self.observed = observed

    def _pyro_sample(self, msg) -> None:
        if not _is_noise(msg):
            return
        msg["value"] = msg["infer"]["abduct"](self.observed)
        msg["is_observed"] = True


class KeepNoise(Messenger):
    """Keep the abducted noise where a coalition mask is True, fresh noise elsewhere.

    Parameters
    ----------
    kept : mapping of node to tensor
        Abducted noise per node (e.g. shape ``(K, D)``).
    masks : mapping of node to bool tensor
        Per node, True where the node is in the coalition; broadcast against the noise value,
        so a leading coalition dimension (e.g. ``(C, 1, 1, 1)``) evaluates many coalitions in one
        pass. Nodes not in ``masks`` are left untouched.
    """

    def __init__(self, kept: Mapping[object, torch.Tensor], masks: Mapping[object, torch.Tensor]) -> None:
        super().__init__()
        self.kept = kept
        self.masks = masks

    def _pyro_sample(self, msg) -> None:
        if not _is_noise(msg):
            return
        node = msg["infer"]["node"]
        if node not in self.masks:
            return
        fresh = msg["value"] if msg["value"] is not None else msg["fn"].sample()
        msg["value"] = torch.where(self.masks[node], self.kept[node], fresh)


class DropGaussianPart(Messenger):
    """Sample only the non-Gaussian part ``R`` of the noise ``N = R + sd * eps`` of ``nodes``.

    See :func:`bayesrca.mechanisms.noise.split_gaussian` (per draw for a model-averaged node). The caller adds the Gaussian part back,
    either as a sample or, for conditional Monte Carlo, by integrating it analytically.

    Parameters
    ----------
    nodes : iterable
        Nodes whose noise sites are split; other sites are left untouched.
    """

    def __init__(self, nodes) -> None:
        super().__init__()
        self.nodes = set(nodes)

    def _pyro_sample(self, msg) -> None:
        if _is_noise(msg) and msg["value"] is None and msg["infer"]["node"] in self.nodes:
            msg["fn"] = split_gaussian_part(msg["fn"])[0]


class ProposeNoise(Messenger):
    """Draw the noise of ``nodes`` from a proposal: a draw ``z`` of the site's distribution, transformed.

    ``z`` is the value an inner handler gave the site (e.g. ``poutine.replay`` of a trace of fresh
    noise, so the proposal reuses those draws: common random numbers) or else a fresh draw. The
    caller owns the transform and the importance weights that undo it
    (:class:`bayesrca.counterfactual.importance.NoiseProposal`).

    Parameters
    ----------
    transforms : mapping of node to callable
        ``transforms[node](z)`` maps a draw of the node's noise distribution to a draw of the
        proposal (it may add batch dimensions, e.g. one per anomaly).
    """

    def __init__(self, transforms: Mapping[object, Callable[[torch.Tensor], torch.Tensor]]) -> None:
        super().__init__()
        self.transforms = transforms

    def _pyro_sample(self, msg) -> None:
        if _is_noise(msg) and msg["infer"]["node"] in self.transforms:
            z = msg["value"] if msg["value"] is not None else msg["fn"].sample()
            msg["value"] = self.transforms[msg["infer"]["node"]](z)


class SwapMechanism(Messenger):
    """Compute nodes with other mechanisms where a mask is True, with the program's value elsewhere.

    For a node in ``mechanisms`` its value becomes
    ``torch.where(masks[node], mechanisms[node].forward(noise[node], parents), value)``, where
    ``value`` is what the program (or an inner handler) computes and ``parents`` are the
    program's parent values. The program's noise site of the node is left as it is: the swapped-in
    mechanism uses ``noise[node]``, drawn from its own noise distribution. Nested handlers
    compose: the inner one's result is the outer one's ``value``.

    Parameters
    ----------
    mechanisms : mapping of node to Mechanism
        Fitted mechanisms to swap in; nodes not in the mapping are left untouched.
    noise : mapping of node to tensor
        Noise of each swapped-in mechanism, broadcastable against the node's value (e.g.
        ``(M, D)`` for M Monte Carlo samples of D posterior draws).
    masks : mapping of node to bool tensor
        Per node, True where the swapped-in mechanism is used; broadcast against the value, so a
        leading coalition dimension (e.g. ``(C, 1, 1)``) evaluates many swaps in one pass.

    Examples
    --------
    The old mechanism of ``"x"`` under every posterior draw, for fresh noise ``n_old``:

    >>> program = SwapMechanism({"x": old}, {"x": n_old}, {"x": torch.tensor(True)})(scm.program)  # doctest: +SKIP
    """

    def __init__(
        self,
        mechanisms: Mapping[object, Mechanism],
        noise: Mapping[object, torch.Tensor],
        masks: Mapping[object, torch.Tensor],
    ) -> None:
        super().__init__()
        self.mechanisms = mechanisms
        self.noise = noise
        self.masks = masks

    def _process_message(self, msg) -> None:
        if msg["type"] != MECHANISM_EFFECT:
            return
        node = msg["infer"]["node"]
        if node not in self.mechanisms:
            return
        parents = msg["args"][2]
        value = msg["value"] if msg["value"] is not None else msg["fn"](*msg["args"], **msg["kwargs"])
        msg["value"] = torch.where(self.masks[node], self.mechanisms[node].forward(self.noise[node], parents), value)


class ImputeMissing(Messenger):
    r"""Hold a row's observed values fixed and draw its missing values from their mechanisms.

    At a node's noise site the noise is drawn from its distribution where the node is missing,
    and is the noise that reproduces the observed value from the parents' current values (drawn
    or observed) elsewhere; at the mechanism effect the node takes its observed value where it is
    observed. For the nodes in ``weighted`` (observed children of missing nodes) the
    log-likelihood of the observed value given the parents' current values is added to
    ``log_weight`` where the node is observed: the importance weight of the drawn values as a
    draw of :math:`p(x_{\mathrm{mis}} \mid x_{\mathrm{obs}})` (likelihood weighting).

    Parameters
    ----------
    observed : mapping of node to tensor
        Observed values (any value of the node's support where missing), e.g. ``(K, 1)`` for K rows.
    missing : mapping of node to bool tensor
        True where the node's value is missing, broadcastable against ``observed``. Nodes not
        in the mapping are observed.
    weighted : collection
        Nodes whose likelihood enters ``log_weight``.
    scales : tuple of float, default (1.0,)
        With more than one scale, a missing node's noise on the real line is drawn from a
        defensive mixture of its distribution widened about its median by each scale (the first
        scale, 1, is the distribution itself), one component per candidate in turn along the
        leading (candidate) dimension, and ``log_weight`` gets the ratio of the noise density to
        the mixture density, so that candidates reach values far in the tails, where the observed
        children of a root cause put them.

    Attributes
    ----------
    values : dict
        Node to its value in this run (observed or drawn).
    log_weight : torch.Tensor or float
        The summed log-likelihoods (0 while no node of ``weighted`` has run).
    """

    def __init__(
        self, observed: Mapping[object, torch.Tensor], missing: Mapping[object, torch.Tensor], weighted=(),
        scales: tuple[float, ...] = (1.0,),
    ) -> None:
        super().__init__()
        self.observed = observed
        self.missing = missing
        self.weighted = set(weighted)
        self.scales = tuple(scales)
        self.values: dict = {}
        self.log_weight: torch.Tensor | float = 0.0

    def _pyro_sample(self, msg) -> None:
        if not _is_noise(msg):
            return
        node = msg["infer"]["node"]
        kept = msg["infer"]["abduct"]({**self.values, node: self.observed[node]})
        if node in self.missing:
            fresh = msg["value"] if msg["value"] is not None else msg["fn"].sample()
            if len(self.scales) > 1 and msg["fn"].support is constraints.real:
                fresh, log_ratio = _widen(msg["fn"], fresh, self.scales)
                self.log_weight = self.log_weight + torch.where(self.missing[node], log_ratio, torch.zeros_like(log_ratio))
            kept = torch.where(self.missing[node], fresh, kept)
        msg["value"] = kept

    def _pyro_mechanism(self, msg) -> None:  # the MECHANISM_EFFECT messages
        node = msg["infer"]["node"]
        mechanism, _, parents = msg["args"]
        observed = self.observed[node]
        if node in self.missing:
            value = msg["value"] if msg["value"] is not None else msg["fn"](*msg["args"], **msg["kwargs"])
            observed = torch.where(self.missing[node], value, observed)
        msg["value"] = self.values[node] = observed
        if node in self.weighted:
            like = mechanism.log_prob(self.observed[node], parents)
            if node in self.missing:
                like = torch.where(self.missing[node], torch.zeros_like(like), like)
            self.log_weight = self.log_weight + like


def _widen(fn, z: torch.Tensor, scales: tuple[float, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Draws ``z`` of ``fn`` (candidates on dimension 0) widened about their median, and log p / q.

    Candidate ``l`` is scaled by ``scales[l % S]``: a draw of the mixture ``q`` of the
    distribution scaled about its median ``c`` by each scale, ``q(n) = sum_s w_s p(c + (n - c) / s) / s``
    with ``w_s`` the share of the candidates scaled by ``s``.
    """
    num, shape = z.shape[0], (-1,) + (1,) * (z.dim() - 1)
    which = torch.arange(num) % len(scales)
    scale = torch.tensor(scales, dtype=z.dtype)[which].reshape(shape)
    log_share = torch.log(torch.bincount(which, minlength=len(scales)).to(z.dtype) / num)
    centre = z.median(dim=0, keepdim=True).values
    value = centre + scale * (z - centre)
    parts = torch.stack([fn.log_prob(centre + (value - centre) / s) - math.log(s) + log_share[i]
                         for i, s in enumerate(scales) if log_share[i] > -math.inf])
    return value, fn.log_prob(value) - torch.logsumexp(parts, dim=0)


def abduct(fn: Callable, observed: Mapping[object, torch.Tensor]) -> Callable:
    """Functional form of :class:`AbductNoise` (``poutine``-style)."""
    return AbductNoise(observed)(fn)


def keep_noise(fn: Callable, kept: Mapping[object, torch.Tensor], masks: Mapping[object, torch.Tensor]) -> Callable:
    """Functional form of :class:`KeepNoise` (``poutine``-style)."""
    return KeepNoise(kept, masks)(fn)
