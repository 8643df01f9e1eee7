"""What a latency depends on, as one record, and a clear warning when two records differ.

A latency model is only as good as its fit to the device it is used on. Two cloud VMs that
both call themselves "AMD EPYC" can time the same block 10-25% apart, so a device is more
than a processor name: the backend, the processor's family/model and vector ISA, the kernel
code path torch runs (``scripts/cpu_isa.sh`` pins AVX2), the torch build, the threads and the
batch size; for a network run by ONNX Runtime, also its version, execution provider and graph
optimisation level. :func:`device_identity` reads that record off this machine;
:func:`identity_from_record` reads it from what a dataset or model saved (older files lack
some fields: they count as "not recorded", not as a difference); :func:`check_device` warns,
naming every field that differs, when data measured on one device is used on another.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

from lenna_core.latency.onnx_runtime import BACKEND as ONNX_RUNTIME
from lenna_core.latency.onnx_runtime import OPTIMIZATION_LEVELS, OnnxRuntimeCpu
from lenna_core.latency.profiler import machine_fingerprint

#: The fields of a device, in the order they are reported (the last three for a runtime only).
IDENTITY_FIELDS = ("backend", "device_name", "cpu_family_model", "cpu_isa", "kernel_path",
                   "torch", "threads", "batch_size", "runtime_version", "execution_provider",
                   "graph_optimization")
NOT_RECORDED = "not recorded"


class DeviceMismatchWarning(UserWarning):
    """Latencies measured on one device are being used on another."""


def identity_from_record(machine: Mapping, threads: int | None = None,
                         batch_size: int | None = None) -> dict:
    """The device fields of a machine record (``machine_fingerprint`` as a dataset's or a
    model's metadata saved it), with the threads and batch size the latencies were timed at."""
    device = str(machine.get("device", "cpu"))
    runtime = machine.get("runtime") == ONNX_RUNTIME
    backend = (f"{ONNX_RUNTIME}, CPU" if runtime
               else "torch eager, " + ("CUDA" if device.startswith("cuda") else "CPU"))
    # The kernel path only matters on the CPU; a GPU's is its name and the CUDA version. ONNX
    # Runtime picks its own CPU kernels (torch's pin, scripts/cpu_isa.sh, does not reach them).
    if runtime:
        kernel = None
        # A model saves its machine record without the threads, which a runtime's record names:
        # unknown, check_device could not open the runtime here and compared torch eager.
        threads = machine.get("intra_op_threads") if threads is None else threads
    elif backend.endswith("CPU"):
        kernel = machine.get("torch_cpu_capability")
    else:
        kernel = machine.get("cuda")
    record = {"backend": backend, "device_name": machine.get("device_name"),
              "cpu_family_model": machine.get("cpu_family_model"),
              "cpu_isa": machine.get("cpu_isa"), "kernel_path": kernel,
              "torch": machine.get("torch"), "threads": threads, "batch_size": batch_size}
    if runtime:  # torch eager records keep their old fields, and nothing more
        record.update(runtime_version=machine.get(ONNX_RUNTIME),
                      execution_provider=machine.get("execution_provider"),
                      graph_optimization=machine.get("graph_optimization"))
    return {k: NOT_RECORDED if v is None else v for k, v in record.items()}


def device_identity(device: str = "cpu", threads: int | None = 1, batch_size: int | None = 1,
                    optimization: str = "all") -> dict:
    """This machine's device fields for timing on ``device`` ('cpu', 'cuda[:N]', or
    'onnxruntime' for ONNX Runtime's CPU provider at graph ``optimization`` level) with
    ``threads`` and ``batch_size``."""
    machine = (OnnxRuntimeCpu(threads, optimization).fingerprint() if device == ONNX_RUNTIME
               else machine_fingerprint(device))
    return identity_from_record(machine, threads, batch_size)


def identity_differences(recorded: Mapping, here: Mapping) -> dict[str, tuple]:
    """``{field: (recorded, here)}`` for every field both records know and that differs."""
    return {k: (recorded.get(k, NOT_RECORDED), here.get(k, NOT_RECORDED))
            for k in IDENTITY_FIELDS
            if NOT_RECORDED not in (recorded.get(k, NOT_RECORDED), here.get(k, NOT_RECORDED))
            and recorded.get(k) != here.get(k)}


def describe_device(identity: Mapping) -> str:
    """One line naming a device, e.g. ``AMD EPYC (family/model 25/17, avx512f, kernels
    AVX2), torch eager, CPU, torch 2.14.1, 1 thread(s), batch 1``; a runtime adds its version,
    provider and graph optimisation level after the backend."""
    runtime = (f" ({identity.get('runtime_version')}, {identity.get('execution_provider')}, "
               f"graph optimisation {identity.get('graph_optimization')})"
               if "runtime_version" in identity else "")
    return (f"{identity.get('device_name')} (family/model {identity.get('cpu_family_model')}, "
            f"{identity.get('cpu_isa')}, kernels {identity.get('kernel_path')}), "
            f"{identity.get('backend')}{runtime}, torch {identity.get('torch')}, "
            f"{identity.get('threads')} thread(s), batch {identity.get('batch_size')}")


def describe_differences(differences: Mapping[str, tuple]) -> str:
    """``field: recorded -> here`` for every difference, joined by semicolons."""
    return "; ".join(f"{k}: {a} -> {b}" for k, (a, b) in differences.items())


def check_device(recorded: Mapping, what: str, here: Mapping | None = None) -> dict[str, tuple]:
    """Warn (:class:`DeviceMismatchWarning`) if ``recorded`` (device fields, see
    :func:`identity_from_record`) differs from ``here`` (default: this machine's CPU with
    the recorded threads and batch size); returns the differences."""
    if here is None:
        threads, batch = recorded.get("threads"), recorded.get("batch_size")
        threads = threads if isinstance(threads, int) else None
        batch = batch if isinstance(batch, int) else None
        backend = str(recorded.get("backend", ""))
        level = recorded.get("graph_optimization")
        level = level if level in OPTIMIZATION_LEVELS else "all"
        device = (ONNX_RUNTIME if backend.startswith(ONNX_RUNTIME)
                  else "cuda" if backend.endswith("CUDA") else "cpu")
        try:
            here = device_identity(device, threads, batch, level)
        except ValueError:  # recorded on a GPU this machine lacks, or a runtime without threads
            here = device_identity("cpu", threads, batch)
    differences = identity_differences(recorded, here)
    if differences:
        warnings.warn(f"{what} was measured on another device than this one "
                      f"({describe_differences(differences)}): its latencies may be off here "
                      "by tens of percent; adapt it with `lenna transfer` (a few "
                      "minutes of profiling) before trusting its milliseconds",
                      DeviceMismatchWarning, stacklevel=2)
    return differences


def same_float_kernels(recorded: Mapping) -> bool:
    """Whether this CPU should reproduce, bit for bit, results computed on the machine of
    ``recorded`` (a machine record, or a row with ``device_name`` and ``torch``): the same
    processor name (and family/model where recorded), torch build and kernel path (AVX2 when
    the record predates that field, as ``scripts/cpu_isa.sh`` pinned it). Measured: two AMD
    EPYC families reproduce each other's searches under the pin; an Intel Xeon does not (its
    MKL and oneDNN take other code paths), so results are compared bit for bit only between
    machines of one kind."""
    import torch

    kernel = recorded.get("torch_cpu_capability") or "AVX2"
    here = machine_fingerprint("cpu")
    # A cloud VM's processor name is often generic ("Intel(R) Xeon(R) Processor"): where the
    # record has the family/model numbers, they must agree too.
    family_model = recorded.get("cpu_family_model")
    return (recorded.get("device_name") == here["device_name"]
            and recorded.get("torch") == here["torch"]
            and family_model in (None, here["cpu_family_model"])
            and kernel == torch.backends.cpu.get_cpu_capability())
