"""lenna_core: the DARTS search space, supernet and latency tools behind the LENNA book."""

from . import data
from .data import load_dataset
from .genotypes import DARTS_V1, DARTS_V2, NAMED_GENOTYPES, Genotype
from .network import NetworkCIFAR, NetworkImageNet, count_parameters
from .operations import OPS, PRIMITIVES
from .search_space import DARTS_SPACE, SearchSpace
from .single_path import sample_single_path_cell, single_path_cell
from .supernet import SearchNetwork, frozen_arch

__version__ = "0.1.0"

__all__ = [
    "DARTS_SPACE", "DARTS_V1", "DARTS_V2", "NAMED_GENOTYPES", "OPS", "PRIMITIVES", "Genotype",
    "NetworkCIFAR", "NetworkImageNet", "SearchNetwork", "SearchSpace", "count_parameters",
    "data", "frozen_arch", "load_dataset", "sample_single_path_cell", "single_path_cell",
    "__version__",
]
