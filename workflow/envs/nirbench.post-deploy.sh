#!/usr/bin/env bash
# Runs once inside the freshly created conda environment, from the workflow's working
# directory (the repository root): install this checkout of nirbench without touching the
# dependencies the environment file pinned.
set -euo pipefail
pip install --no-deps -e .
