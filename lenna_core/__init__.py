"""lenna_core: the DARTS search space, supernet and latency tools behind the LENNA book."""

from lenna_core.space import data
from lenna_core.space.data import load_dataset
from lenna_core.space.genotypes import DARTS_V1, DARTS_V2, NAMED_GENOTYPES, Genotype
from lenna_core.space.network import NetworkCIFAR, NetworkImageNet, count_parameters
from lenna_core.space.operations import OPS, PRIMITIVES
from lenna_core.space.search_space import DARTS_SPACE, SearchSpace
from lenna_core.space.single_path import sample_single_path_cell, single_path_cell
from lenna_core.space.supernet import SearchNetwork, frozen_arch

__version__ = "0.1.0"

__all__ = [
    "DARTS_SPACE", "DARTS_V1", "DARTS_V2", "NAMED_GENOTYPES", "OPS", "PRIMITIVES", "Genotype",
    "NetworkCIFAR", "NetworkImageNet", "SearchNetwork", "SearchSpace", "count_parameters",
    "data", "frozen_arch", "load_dataset", "sample_single_path_cell", "single_path_cell",
    "__version__",
]
