# Sourced by the book and test commands (and by hand before papermill or JupyterLab):
# pins torch's CPU arithmetic to its AVX2 code paths. Float rounding differs between the
# AVX2 and AVX-512 kernels, and a 2-epoch search turns that difference into other derived
# cells: on an AVX-512 EPYC, chapter 6's plain-DARTS seed 0 found another cell than the
# committed notebook, executed on an AVX2 machine. With all three set it finds the committed
# cells (without the oneDNN line, or with MKL_CBWR instead of the MKL line, it does not).
# Cost: one chapter 6 search took 29.6 and 33.4 s pinned, 32.5 and 31.4 s native here.
# LENNA_NATIVE_ISA=1 leaves the CPU's own kernels, e.g. to time blocks as deployed.
if [[ "${LENNA_NATIVE_ISA:-0}" != 1 ]]; then
    export ATEN_CPU_CAPABILITY="${ATEN_CPU_CAPABILITY:-avx2}"          # torch's own kernels
    export ONEDNN_MAX_CPU_ISA="${ONEDNN_MAX_CPU_ISA:-AVX2}"            # oneDNN convolutions
    export MKL_ENABLE_INSTRUCTIONS="${MKL_ENABLE_INSTRUCTIONS:-AVX2}"  # MKL matrix products
fi
