import os

# pytest runs one notebook per worker (pytest-xdist, `-n 2` in pytest.ini). With as many workers as
# cores, one math thread per worker avoids oversubscribing the CPU, which slows small convolutions
# many times over. Set OMP_NUM_THREADS yourself to override.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

# The notebooks run as tests under the short `ci` budget; unset, the budget would be `docs` (half an hour a tutorial).
os.environ.setdefault("PYGENBRIX_BUDGET", "ci")
