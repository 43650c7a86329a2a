"""Every notebook follows the conventions that make it a documentation page and a Colab notebook.

Fast: nothing here runs a notebook. Checked for each notebook in `nbs/`:
- an H1 title and a one-line `> subtitle` in its first markdown cell (they become the page title and description);
- library notebooks declare `#| default_exp` with the module their path names (`layers/10_bernoulli` -> `layers.bernoulli`);
- every notebook but `index` opens with an "Open in Colab" badge pointing at its own path, then an install cell that
  does nothing where pygenbrix is importable and is valid IPython (a magic after `except ...:` on the same line is not);
- tutorial and model notebooks select the GPU when there is one;
- the first dataset a notebook builds is fetched where its files are missing (`download=True`), as on Colab;
- no cell that nbdev runs on its own to render the docs mixes imports with other code: such a cell fails `nbdev_docs`
  (it lacks the notebook's other cells) or makes every docs build run it (a training run);
- `nbs/sidebar.yml` lists every notebook exactly once and nothing else;
- README.md is what `python docs_tools/make_readme.py` writes from `nbs/index.ipynb`.
"""
import ast, json, re, sys
from pathlib import Path

import pytest
import yaml
from IPython.core.inputtransformer2 import TransformerManager
from nbdev.config import get_config
from nbdev.doclinks import nbglob

config = get_config()
NBS = config.nbs_path
NOTEBOOKS = sorted(Path(f).relative_to(NBS).as_posix() for f in nbglob(NBS))
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
INSTALL_URL = f"git+https://github.com/{config.user}/{config.repo}.git"
SIDEBAR = NBS / "sidebar.yml"
DEVICE_LINE = re.compile(r"""^\s*device\s*=\s*(?:torch\.device\()?\s*["']cuda["']\s+if\s+torch\.cuda\.is_available\(\)\s+else\s+["']cpu["']""",
                         re.MULTILINE)


def colab_url(notebook: str) -> str:
    "The Colab address that opens `notebook` (relative to nbs/) from the repository's default branch."
    nbs_folder = NBS.relative_to(config.config_path).as_posix()
    return f"https://colab.research.google.com/github/{config.user}/{config.repo}/blob/{config.branch}/{nbs_folder}/{notebook}"


def module_for(notebook: str) -> str:
    "The module a library notebook exports to, from its path: `layers/10_bernoulli.ipynb` -> `layers.bernoulli`."
    *folders, name = Path(notebook).with_suffix("").parts
    return ".".join(folders + [re.sub(r"^\d+_", "", name)])


def is_library(notebook: str) -> bool: return notebook != "index.ipynb" and not notebook.startswith("tutorials/")
def needs_device(notebook: str) -> bool: return notebook.startswith(("tutorials/", "models/"))


def cells(notebook: str) -> list:
    "The cells of `notebook` as (cell_type, source) pairs."
    nb = json.loads((NBS / notebook).read_text(encoding="utf-8"))
    return [(c["cell_type"], "".join(c["source"])) for c in nb["cells"]]


def is_default_exp(cell) -> bool: return cell[0] == "code" and re.match(r"\s*#\|\s*default_exp\s", cell[1]) is not None


def compiles_in_ipython(source: str) -> bool:
    try: compile(TransformerManager().transform_cell(source), "<cell>", "exec")
    except SyntaxError: return False
    return True


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_title_and_subtitle(notebook):
    markdown = [source for kind, source in cells(notebook) if kind == "markdown"]
    assert markdown, f"{notebook} has no markdown cell; it must open with '# Title' and '> subtitle'"
    lines = [line for line in markdown[0].strip().splitlines() if line.strip()]
    assert re.match(r"# \S", lines[0]), f"{notebook}: the first markdown cell must start with an H1 title '# ...'; got {lines[0]!r}"
    assert len(lines) > 1 and re.match(r"> \S", lines[1]), \
        f"{notebook}: the title must be followed by a one-line subtitle '> ...'; got {lines[1:2]}"


@pytest.mark.parametrize("notebook", [n for n in NOTEBOOKS if is_library(n)])
def test_default_exp(notebook):
    found = [re.search(r"default_exp\s+(\S+)", source).group(1) for kind, source in cells(notebook) if is_default_exp((kind, source))]
    assert found == [module_for(notebook)], \
        f"{notebook} must have one code cell '#| default_exp {module_for(notebook)}'; found {found}"


@pytest.mark.parametrize("notebook", [n for n in NOTEBOOKS if n != "index.ipynb"])
def test_colab_badge_and_install_cell(notebook):
    # The badge must be what a reader sees first after the title; the default_exp cell may sit anywhere up to here.
    all_cells = cells(notebook)
    title = next(i for i, (kind, _) in enumerate(all_cells) if kind == "markdown")
    opening = [cell for cell in all_cells[title + 1:] if not is_default_exp(cell)]
    badge = f"[![Open In Colab]({COLAB_BADGE})]({colab_url(notebook)})"
    assert opening and opening[0][0] == "markdown" and opening[0][1].strip() == badge, \
        f"{notebook}: right after the title, a markdown cell must hold exactly\n{badge}\ngot {opening[:1]}"
    kind, install = opening[1] if len(opening) > 1 else (None, "")
    assert kind == "code" and "import pygenbrix" in install and "except ImportError" in install and INSTALL_URL in install, \
        (f"{notebook}: the cell after the Colab badge must install pygenbrix only where it is missing:\n"
         f"try: import pygenbrix\nexcept ImportError:\n    %pip install -q {INSTALL_URL}\ngot {install!r}")
    assert not re.search(r"#\|\s*export", install), f"{notebook}: the install cell must not be exported"
    assert compiles_in_ipython(install), \
        f"{notebook}: the install cell is not valid IPython (put %pip on its own line under 'except ImportError:'):\n{install}"


@pytest.mark.parametrize("notebook", [n for n in NOTEBOOKS if needs_device(n)])
def test_selects_gpu_when_there_is_one(notebook):
    code = [source for kind, source in cells(notebook) if kind == "code" and not re.search(r"#\|\s*export", source)]
    assert any(DEVICE_LINE.search(source) for source in code), \
        f'{notebook} must select the device in a (non-exported) code cell: device = "cuda" if torch.cuda.is_available() else "cpu"'


DATASET_CALL = re.compile(r"\b(?:MNIST|CIFAR10|CelebA|get_dataset)\(")


def first_dataset_line(notebook: str):
    "The first line that builds a dataset needing files (not inside `test_fail`, not the bundled digits), or None."
    for kind, source in cells(notebook):
        if kind != "code" or re.search(r"#\|\s*export", source): continue
        for line in source.splitlines():
            if DATASET_CALL.search(line) and "test_fail" not in line and "root=" not in line and "digits" not in line:
                return line.strip()


@pytest.mark.parametrize("notebook", [n for n in NOTEBOOKS if n != "index.ipynb" and first_dataset_line(n)])
def test_fetches_its_dataset(notebook):
    line = first_dataset_line(notebook)
    assert "download=True" in line, (f"{notebook}: on Colab the dataset's files are not there yet, so the first dataset it "
                                     f"builds must pass download=True (the local copy is used where the files exist): {line}")


def run_alone_by_docs(notebook: str) -> list:
    "Cells that nbdev's docs processing runs apart from the rest of the notebook although they hold more than imports."
    # To render show_doc, nbdev runs in a fresh shell the exported cells and every cell with an import
    # (nbdev.processors._do_eval), and warns when such a cell holds other code too.
    code = [source for kind, source in cells(notebook) if kind == "code"]
    if not any(re.search(r"^\s*#\|\s*(exports?|exec_doc)\b|^show_doc\(", source, re.MULTILINE) for source in code): return []
    found = []
    for source in code:
        if source.strip()[:1] in ("%", "!") or re.search(r"^\s*#\|\s*(export|exports|exporti|exec_doc)\b", source, re.MULTILINE): continue
        if re.search(r"^\s*#\|\s*eval:\s*false", source, re.MULTILINE | re.IGNORECASE): continue
        try: nodes = list(ast.walk(ast.parse(source)))
        except SyntaxError: continue  # nbdev does not run what it cannot parse
        if any(isinstance(n, (ast.Import, ast.ImportFrom)) for n in nodes) and any(isinstance(n, (ast.Expr, ast.Assign)) for n in nodes):
            found.append(source)
    return found


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_docs_run_no_mixed_import_cell(notebook):
    mixed = run_alone_by_docs(notebook)
    assert not mixed, (f"{notebook}: nbdev_docs runs every cell that holds an import on its own, without the rest of the "
                       "notebook (to render show_doc); move the imports of these cells into a cell of their own:\n---\n"
                       + "\n---\n".join(source[:300] for source in mixed))


def sidebar_entries(contents) -> list:
    "Every file named in a quarto sidebar `contents` list, sections included."
    entries = []
    for item in contents:
        if isinstance(item, str): entries.append(item)
        elif isinstance(item, dict):
            if "href" in item: entries.append(item["href"])
            entries += sidebar_entries(item.get("contents", []))
    return entries


def test_sidebar_lists_every_notebook_once():
    assert SIDEBAR.exists(), (f"{SIDEBAR} is missing: the documentation's reading order lives there "
                              "(settings.ini needs custom_sidebar = True, and .gitignore must not ignore sidebar.yml)")
    assert str(config.get("custom_sidebar", "False")).lower() in ("true", "1", "yes"), \
        "settings.ini must say custom_sidebar = True, or nbdev_docs overwrites nbs/sidebar.yml with an alphabetical one"
    entries = sidebar_entries(yaml.safe_load(SIDEBAR.read_text())["website"]["sidebar"]["contents"])
    duplicates = sorted({e for e in entries if entries.count(e) > 1})
    missing, unknown = sorted(set(NOTEBOOKS) - set(entries)), sorted(set(entries) - set(NOTEBOOKS))
    assert not (duplicates or missing or unknown), (
        f"nbs/sidebar.yml must list each notebook once, in reading order. Add: {missing}; remove (no such notebook): {unknown}; "
        f"listed twice: {duplicates}")


def test_readme_is_generated_from_index():
    sys.path.insert(0, str(config.config_path / "docs_tools"))
    from make_readme import render_readme
    text, images = render_readme(config)
    readme = config.config_path / "README.md"
    assert readme.exists() and readme.read_text(encoding="utf-8") == text, \
        "README.md is not what nbs/index.ipynb gives: run `python docs_tools/make_readme.py` and commit README.md"
    stale = [path for path, content in images.items()
             if not (config.config_path / path).exists() or (config.config_path / path).read_bytes() != content]
    assert not stale, f"README images are out of date: run `python docs_tools/make_readme.py` and commit {stale}"
