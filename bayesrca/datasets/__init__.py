"""Example data sets: small ones shipped with bayesrca, loaders for public benchmarks (PetShop, Nezha)."""

from .microservice import (
    MICROSERVICE_EDGES,
    load_microservice,
    load_microservice_degradation,
)
from .nezha import NezhaCase, NezhaSystem, load_nezha, nezha_systems, robust_z
from .online_shop import (
    ONLINE_SHOP_EDGES,
    load_online_shop,
    load_online_shop_first_quarter,
)
from .petshop import PetShopIssue, PetShopScenario, load_petshop, petshop_scenarios
from .supply_chain import SUPPLY_CHAIN_CHANGED, SUPPLY_CHAIN_EDGES, load_supply_chain

__all__ = [
    "MICROSERVICE_EDGES",
    "NezhaCase",
    "NezhaSystem",
    "ONLINE_SHOP_EDGES",
    "SUPPLY_CHAIN_CHANGED",
    "SUPPLY_CHAIN_EDGES",
    "PetShopIssue",
    "PetShopScenario",
    "load_microservice",
    "load_microservice_degradation",
    "load_nezha",
    "load_online_shop",
    "load_online_shop_first_quarter",
    "load_petshop",
    "load_supply_chain",
    "nezha_systems",
    "petshop_scenarios",
    "robust_z",
]
