"""Example data sets: small ones shipped with bayesrca, loaders for public benchmarks."""

from .microservice import MICROSERVICE_EDGES, load_microservice
from .online_shop import ONLINE_SHOP_EDGES, load_online_shop, load_online_shop_first_quarter
from .petshop import PetShopIssue, PetShopScenario, load_petshop, petshop_scenarios

__all__ = [
    "load_microservice",
    "MICROSERVICE_EDGES",
    "load_online_shop",
    "load_online_shop_first_quarter",
    "ONLINE_SHOP_EDGES",
    "load_petshop",
    "petshop_scenarios",
    "PetShopScenario",
    "PetShopIssue",
]
