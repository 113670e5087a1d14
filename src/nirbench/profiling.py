"""Where the time of a VMC iteration goes: named phases, timed only while profiling is on.

The library marks its phases with :func:`timed` (``out = timed("local energies", fn, *args)``).
Outside :func:`profiling` it only calls ``fn``; inside, it waits for ``fn``'s arrays
(``jax.block_until_ready``: JAX dispatches asynchronously, so without the wait the time would
land in whichever later phase first needs the result) and adds the seconds to the phase. The
waits serialise work that would otherwise overlap, so a profiled iteration is slightly slower
than an unprofiled one; ``nirbench bench profile`` reports both. The phases:

* ``proposal sampling`` (NIR: the Transformer's autoregressive draws and the NQS evaluation of the
  drawn tuples, one compiled call per round, so the two are timed together);
* ``sampling`` (Metropolis and exact draws);
* ``proposal training`` (NIR's Adam steps on the proposal);
* ``local energies`` (the mean local-energy matrix of the batch);
* ``gradient and minSR`` (the NQS update); ``trust region`` (NIR: predicted efficiencies);
* ``JSD`` (the diagnostic, only with ``jsd_every``);
* ``host`` (everything else in the iteration: the Python loop, transfers, statistics).
"""

from __future__ import annotations

import functools
import os
import platform
import time
from collections import defaultdict
from contextlib import contextmanager

import jax

_active: dict | None = None


@contextmanager
def profiling():
    """Collect phase times while inside: yields ``{phase: seconds}`` (summed over calls)."""
    global _active
    previous, _active = _active, defaultdict(float)
    try:
        yield _active
    finally:
        _active = previous


def timed(phase: str, fn, *args, **kwargs):
    """``fn(*args, **kwargs)``; while profiling, its wall time (until its arrays are ready) is added to ``phase``."""
    if _active is None:
        return fn(*args, **kwargs)
    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args, **kwargs))
    _active[phase] += time.perf_counter() - start
    return out


def is_profiling() -> bool:
    return _active is not None


@functools.cache
def cpu_description(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The machine a timing came from, for the ``cpu`` column of timing CSVs: the CPU's model name,
    its logical cores and its widest vector extension, e.g. ``"AMD EPYC, 2 cores, avx2"``.

    Speeds compare only between rows of one machine: on a 2-core AMD EPYC without AVX-512 the same
    code ran the 4x4 K = 3 reference iteration in 3.6 s against 0.93 s on a 2-core Intel Xeon with
    AVX-512 (docs/benchmarks.md). Read from ``cpuinfo`` (Linux's ``/proc/cpuinfo``) where it
    exists, else from :func:`platform.processor`.
    """
    model, flags = "", set()
    try:
        with open(cpuinfo) as lines:
            for line in lines:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and not model:
                    model = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    model = model or platform.processor() or platform.machine() or "unknown CPU"
    vector = next((ext for ext in ("avx512f", "avx2", "avx", "sse2", "neon", "asimd") if ext in flags), None)
    parts = [model, f"{os.cpu_count()} cores"] + ([vector.replace("avx512f", "avx512")] if vector else [])
    return ", ".join(parts)
