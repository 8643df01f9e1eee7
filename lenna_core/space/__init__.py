"""Layer 0, the search space and its networks: DARTS primitives and their costs, genotypes, the
search space, cells, the supernet (softmax and binary gates), single-path cells, evaluation
networks and the image data they train on.

Imports nothing else from lenna_core: the layers above build on it.
"""
