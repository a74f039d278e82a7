"""Test-session settings: idle OpenMP threads sleep rather than spin (must precede importing torch)."""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
