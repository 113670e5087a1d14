"""nirbench: neural importance resampling (NIR) for neural quantum states.

Importing nirbench enables JAX's 64-bit mode (as NetKet does): exact checks and minSR need
double precision. Set ``NIRBENCH_X64=0`` before importing to run in 32-bit.
"""

import os

import jax

jax.config.update("jax_enable_x64", os.environ.get("NIRBENCH_X64", "1") != "0")

__version__ = "0.1.0"
