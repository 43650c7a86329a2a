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
- README.md is what `python docs_tools/make_readme.py` writes from `nbs/index.ipynb`;
- stored outputs come from the code beside them: no outputs in export, import or test cells (`is_test_cell` says
  what a test cell is), every budget line in an output names the book's budget, `docs`, and no output shows a path
  of the machine that ran it (a home, work or temporary folder, or the Python installation), and every `show_doc`
  source link into the notebook's own module reaches the line that defines what it shows.
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


# ---- Stored outputs ----------------------------------------------------------------------------------------------
# The book's pages are the notebooks with their stored outputs, so each output must be one that the code beside it
# prints today, under the budget the book declares, and must not carry the paths of the machine that ran it.

BOOK_BUDGET = "docs"  # every stored output comes from `PYGENBRIX_BUDGET=docs`; pygenbrix.budget (06_budget) says so too
BUDGET_LINE = re.compile(r"\bbudget (ci|docs|full) on ")  # how `Budget.report()` and a `Budget`'s repr begin
TEST_FUNCTIONS = {"test_eq", "test_ne", "test_close", "test_is", "test_fail", "test_eq_type", "test_shuffled",
                  "test_stdout", "test_warns", "test_fig_exists", "test_sig", "test"}
MACHINE_PATH = re.compile(r"""(?<![\w.~-])(?:/(?:root|home|Users|tmp|private|var/folders|work|content|mnt|opt)/[^\s'"]*|/usr/local\b[^\s'"]*"""
                          r"""|[^\s'"]*[/\\](?:site|dist)-packages[/\\][^\s'"]*|[A-Za-z]:\\Users\\[^\s'"]*)""")


def code_cells(notebook: str) -> list:
    "The code cells of `notebook` as (index, source, outputs) triples; the index counts every cell, as c0, c1, ... below."
    nb = json.loads((NBS / notebook).read_text(encoding="utf-8"))
    return [(i, "".join(c["source"]), c.get("outputs", [])) for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"]


def output_text(output) -> str:
    "The text of a stored output: a stream, the plain-text form of a result or display, or a traceback."
    if output.get("output_type") == "stream": return "".join(output.get("text", ""))
    if output.get("output_type") == "error": return "\n".join(output.get("traceback", []))
    text = output.get("data", {}).get("text/plain", "")
    return "".join(text) if isinstance(text, list) else text


def is_export_cell(source: str) -> bool: return re.search(r"^\s*#\|\s*exports?\b", source, re.MULTILINE) is not None


def statements(source: str):
    "The top-level statements of a cell, or None where it is not plain Python (a magic, a shell line)."
    try: return ast.parse(source).body
    except SyntaxError: return None


def is_import_cell(source: str) -> bool:
    "A cell that holds only `import` and `from ... import` statements (directives and comments aside)."
    body = statements(source)
    return bool(body) and all(isinstance(node, (ast.Import, ast.ImportFrom)) for node in body)


def is_test_statement(node) -> bool:
    "An `assert`, a call of a fastcore.test function, or a `for`/`with`/`if` whose body holds only such statements."
    if isinstance(node, ast.Assert): return True
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        function = node.value.func
        name = function.id if isinstance(function, ast.Name) else function.attr if isinstance(function, ast.Attribute) else None
        return name in TEST_FUNCTIONS
    if isinstance(node, (ast.For, ast.With, ast.If)):
        return all(is_test_statement(child) for child in node.body + getattr(node, "orelse", []))
    return False


def is_test_cell(source: str) -> bool:
    """A cell of tests: its statements are tests (see `is_test_statement`), possibly after assignments, imports and
    definitions that set them up, and it ends with a test. Nothing in it asks for output: a test passes silently."""
    body = statements(source)
    if not body or not is_test_statement(body[-1]): return False
    setup = (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef)
    return all(is_test_statement(node) or isinstance(node, setup) for node in body)


def silent_cells_with_outputs(notebook: str) -> list:
    "Export, import and test cells of `notebook` that have stored outputs, as 'c<index> (<kind>)'."
    found = []
    for index, source, outputs in code_cells(notebook):
        if not outputs: continue
        kind = ("export" if is_export_cell(source) else "import" if is_import_cell(source)
                else "test" if is_test_cell(source) else None)
        if kind: found.append(f"c{index} ({kind} cell): {output_text(outputs[0])[:120]!r}")
    return found


def test_cell_kinds():
    assert is_export_cell("#| export\ndef f(): pass") and is_export_cell("#| exports\nx = 1") and not is_export_cell("#| hide\nx = 1")
    assert is_import_cell("#| hide\nimport torch\nfrom torch import nn  # why") and not is_import_cell("import torch\ntorch.ones(2)")
    assert is_test_cell("test_eq(f(1), 2)\nassert g()") and is_test_cell("x = f(2)\nfor y in x: test_close(y, 0)")
    assert not is_test_cell("test_eq(f(1), 2)\nf(3)") and not is_test_cell("x = f(2)") and not is_test_cell("print(f(2))\nassert True")
    assert not is_test_cell("%timeit f()") and is_test_cell("fastcore.test.test_fail(lambda: f(-1), contains='negative')")


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_no_outputs_in_export_import_or_test_cells(notebook):
    """Export cells (`#| export`, `#| exports`) define the library, import cells (only `import` statements) load it, and
    test cells (only asserts and fastcore.test calls, after their setup: `is_test_cell`) pass silently: none of them has
    an output to show. What they store is a leftover of older code or a warning of the machine that ran them."""
    found = silent_cells_with_outputs(notebook)
    assert not found, f"{notebook}: clear the stored outputs of these cells (or silence what prints them):\n" + "\n".join(found)


def budget_lines(notebook: str) -> list:
    "The budget lines in `notebook`'s stored outputs, as (cell index, budget, line) triples."
    return [(index, match.group(1), line.strip()) for index, _, outputs in code_cells(notebook) for output in outputs
            for line in output_text(output).splitlines() for match in [BUDGET_LINE.search(line)] if match]


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_outputs_come_from_the_books_budget(notebook):
    """The book declares one budget for every stored output, `docs` (BOOK_BUDGET; see pygenbrix.budget): a notebook is
    executed with `PYGENBRIX_BUDGET=docs` before its outputs are committed. A budget line of another budget in a stored
    output ('budget ci on cpu ...', as `Budget.report()` prints it) shows outputs of a run the page does not describe."""
    wrong = [f"c{index}: {line}" for index, budget, line in budget_lines(notebook) if budget != BOOK_BUDGET]
    assert not wrong, (f"{notebook}: stored outputs must come from PYGENBRIX_BUDGET={BOOK_BUDGET}; these come from another "
                       "budget:\n" + "\n".join(wrong))


def machine_paths(notebook: str) -> list:
    "Absolute paths of a particular machine in `notebook`'s stored outputs, as 'c<index>: <path>'."
    return [f"c{index}: {match.group(0)[:120]}" for index, _, outputs in code_cells(notebook) for output in outputs
            for match in MACHINE_PATH.finditer(output_text(output))]


def test_machine_path_pattern():
    for text in ["/root/data", "Path('/work/data')", "/home/ann/x.py:3: UserWarning", "/tmp/tmpab12/logs",
                 "/opt/venv/lib/python3.11/site-packages/torch/nn.py", r"C:\Users\ann\x.py", "/content/pygenbrix/logs",
                 "CUDA_HOME='/usr/local'", "/opt/conda/bin/python"]:
        assert MACHINE_PATH.search(text), text
    for text in ["budget docs on cpu", "logs/version_0", "nats/image", "kl/14x14", "~/data", "torch/utils/cpp_extension.py:183"]:
        assert not MACHINE_PATH.search(text), text


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_no_machine_paths_in_outputs(notebook):
    """Stored outputs name no folder of the machine that ran them: home and work folders, temporary folders, Colab's
    /content, the Python or CUDA installation (site-packages, dist-packages, /opt, /usr/local, as warnings and torch's
    compiler notices print them)."""
    found = machine_paths(notebook)
    assert not found, f"{notebook}: stored outputs show paths of the machine that ran them:\n" + "\n".join(found)


SOURCE_LINK = re.compile(r"blob/[\w.-]+/(pygenbrix/[\w/]+\.py)#L(\d+)\)[^\n]*\n+#+ ([\w.]+)")


def stale_source_links(notebook: str) -> list:
    """`show_doc` outputs of `notebook` whose [source] link into the notebook's own module does not reach the line that
    defines the name shown (or the two after it, where a decorator or a long signature comes first), as 'c<index>: ...'.
    Links into other modules are left out: nbdev resolves a name that two modules define to one of them."""
    own_file = "pygenbrix/" + module_for(notebook).replace(".", "/") + ".py"
    lines = (config.config_path / own_file).read_text(encoding="utf-8").splitlines()
    found = []
    for index, _, outputs in code_cells(notebook):
        for output in outputs:
            markdown = output.get("data", {}).get("text/markdown", "")
            for match in SOURCE_LINK.finditer("".join(markdown) if isinstance(markdown, list) else markdown):
                path, line, shown = match.group(1), int(match.group(2)), match.group(3)
                if path != own_file: continue
                name = re.escape(shown.split(".")[-1])
                if not any(re.search(rf"\b(?:def|class)\s+{name}\b|^\s*{name}\s*=", text) for text in lines[line - 1:line + 2]):
                    found.append(f"c{index}: {shown} links to {path} line {line}: {lines[line - 1].strip()[:60] if line <= len(lines) else 'past the end'!r}")
    return found


@pytest.mark.parametrize("notebook", [n for n in NOTEBOOKS if is_library(n)])
def test_source_links_reach_their_definitions(notebook):
    """A `show_doc` output links to the line of the exported module that defines what it shows. After an export cell
    changes, the notebooks that show names from its module are executed again, so the links follow the code."""
    found = stale_source_links(notebook)
    assert not found, f"{notebook}: execute it again; these source links point at lines that have moved:\n" + "\n".join(found)
