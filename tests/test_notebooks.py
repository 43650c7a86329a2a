"""Every notebook in `nbs/` is one test, run by nbdev's own notebook runner (what `nbdev_test` runs).

Running them under pytest adds a per-notebook pass/fail summary and parallel workers (pytest-xdist).
"""
import pytest
from nbdev.config import get_config
from nbdev.doclinks import nbglob
from nbdev.test import test_nb as run_notebook, _keep_file

config = get_config()
NOTEBOOKS = sorted(f.absolute() for f in nbglob(config.nbs_path, as_path=True) if _keep_file(f, ".notest"))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: str(p.relative_to(config.nbs_path.absolute())))
def test_notebook(notebook):
    passed, seconds = run_notebook(notebook, skip_flags=config.tst_flags.split(), basepath=config.config_path)
    assert passed, f"{notebook.name} failed after {seconds:.0f}s; its traceback is printed above"
