"""Shared test set-up.

- nirbench enables 64-bit JAX on import; tests rely on it.
- XLA compilation is most of the suite's time, and many tests compile the same programs (the
  same tiny networks and samplers, in both pytest-xdist workers). Every compiled program is
  therefore kept in a persistent JAX compilation cache shared by the workers and by the
  subprocesses the tests start: ``.pytest_cache/jax_compilation`` under the repository (ignored
  by git), or ``$JAX_COMPILATION_CACHE_DIR`` when set. On a clean checkout this halved the time of
  ``tests/test_vmc.py``, ``test_robustness.py`` and ``test_evaluation.py`` (198 s -> 103 s, two
  workers, cold cache, two runs back to back; the whole suite gained 8 % in a paired run,
  docs/pipeline.md). JAX keys each entry by the program, the compile options and the jax/jaxlib
  versions, so a stale entry is never used; deleting the folder is always safe.
"""

import os
from pathlib import Path

_CACHE = os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR",
    str(Path(__file__).resolve().parents[1] / ".pytest_cache" / "jax_compilation"),
)
# cache every program, however quick to compile (JAX's defaults skip those under one second)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")

import jax

import nirbench  # noqa: F401

# the environment above reaches the subprocesses; this process may have imported jax already
# (a pytest plugin), so its configuration is set explicitly from the same values
jax.config.update("jax_compilation_cache_dir", _CACHE)
jax.config.update(
    "jax_persistent_cache_min_compile_time_secs",
    float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]),
)
jax.config.update(
    "jax_persistent_cache_min_entry_size_bytes", int(os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"])
)
