"""nbdev's documentation processing succeeds on every notebook: the part of `nbdev_docs` that runs before quarto.

To render `show_doc`, nbdev runs each notebook's exported cells, and every cell that holds an import, in a fresh
shell without the notebook's other cells. A cell that mixes an import with code using names from other cells then
fails, and with it the whole `nbdev_docs`; one that trains a model makes every docs build train it. This runs
nbdev's processors on each notebook as `nbdev_docs` does. Not in the default `pytest` run (its time depends on what
the notebooks make nbdev run; tests/test_notebook_conventions.py catches the usual cause at once): `pytest docs_tools`.
"""
import os, warnings
from pathlib import Path

import pytest
from execnb.nbio import read_nb
from nbdev.config import get_config
from nbdev.doclinks import nbglob
from nbdev.processors import FilterDefaults

config = get_config()
NOTEBOOKS = sorted(Path(f).relative_to(config.nbs_path).as_posix() for f in nbglob(config.nbs_path))


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_docs_processing(notebook):
    nb = read_nb(config.nbs_path / notebook)
    previous = os.environ.get("IN_TEST")
    os.environ["IN_TEST"] = "1"  # as nbdev's docs processing sets it
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Found cells containing imports and other code")
            FilterDefaults()(nb)
    except Exception as error:
        pytest.fail(f"nbdev_docs would fail on {notebook}: {error}\n(cause: {error.__cause__!r})\n"
                    "nbdev runs every cell with an import on its own while rendering the docs: move the imports of "
                    "this cell into a cell of their own.", pytrace=False)
    finally:
        if previous is None: del os.environ["IN_TEST"]
        else: os.environ["IN_TEST"] = previous
