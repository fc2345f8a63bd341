"""Settings for every test run, notebooks included (nbval kernels inherit this environment)."""

import os

# With OpenMP's default busy-waiting, two processes sharing a 2-core machine (pytest and a notebook
# kernel, or two kernels) spin against each other and run several times slower. Must be set before
# torch is imported anywhere.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
