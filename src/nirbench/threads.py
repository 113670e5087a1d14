"""The environment that limits a process's XLA, OpenMP and BLAS to a number of CPU threads.

Used by the pipeline's compute jobs (``threads_env`` in ``workflow/rules/common.smk``) and by the
benchmark scripts that start one-core child processes, so the limits are written once. They must
be in the environment before JAX or NumPy is imported.
"""

from __future__ import annotations


def thread_limits(threads: int) -> dict[str, str]:
    """Environment variables for ``threads`` CPU threads: XLA's CPU backend (one Eigen pool,
    ``threads`` intra-op threads) and the OpenMP, OpenBLAS and MKL pools."""
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    return {
        "XLA_FLAGS": f"--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads={threads}",
        "OMP_NUM_THREADS": str(threads),
        "OPENBLAS_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
    }
