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
