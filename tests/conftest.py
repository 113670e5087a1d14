"""Shared test set-up: nirbench enables 64-bit JAX on import; tests rely on it."""

import nirbench  # noqa: F401
