"""Small example data sets shipped with bayesrca."""

from .microservice import MICROSERVICE_EDGES, load_microservice

__all__ = ["load_microservice", "MICROSERVICE_EDGES"]
