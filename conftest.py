"""Settings for every test run, notebooks included (nbval kernels inherit this environment)."""

import os
from pathlib import Path

# With OpenMP's default busy-waiting, two processes sharing a 2-core machine (pytest and a notebook
# kernel, or two kernels) spin against each other and run several times slower. Must be set before
# torch is imported anywhere.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# The real Omniglot zips, read-only, beside the repository: notebooks and tests find them through
# fewshot_course.data.omniglot_root(). Elsewhere the tests that need them skip and say why.
_OMNIGLOT_BESIDE = Path(__file__).resolve().parent.parent / "shared" / "data" / "omniglot"
if _OMNIGLOT_BESIDE.is_dir():
    os.environ.setdefault("FEWSHOT_OMNIGLOT_DIR", str(_OMNIGLOT_BESIDE))
