"""Node mechanisms: Pyro models of one node given its parents, with posterior draws."""

from .additive import AdditiveNoiseModel
from .base import Mechanism, noise_site
from .discrete import BernoulliGLM, CategoricalGLM, DiscreteGLM, PoissonGLM
from .gp import GPANM
from .linear import LinearANM
from .mixture import FamilyMixture
from .noise import BootstrapGPD, ResidualKDE
from .root import RootDistribution
from .spline import SplineANM

__all__ = [
    "Mechanism",
    "AdditiveNoiseModel",
    "LinearANM",
    "SplineANM",
    "GPANM",
    "RootDistribution",
    "DiscreteGLM",
    "BernoulliGLM",
    "PoissonGLM",
    "CategoricalGLM",
    "FamilyMixture",
    "ResidualKDE",
    "BootstrapGPD",
    "noise_site",
]
