"""Layer 1, latency: timing on a device (profiler, reference cell, device identity and folders,
ONNX Runtime), blocks in context and their stopping rules, labelled datasets and their files
(labelled in shards on a farm of devices, then merged), the encoder, the latency models (op
table, ElasticNet, MLP), their metrics and their transfer to a new device.

May import lenna_core.space; never search, book or cli.
"""
