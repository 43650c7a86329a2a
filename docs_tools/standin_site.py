"""A stand-in for the quarto site, made without quarto: only to exercise `check_site.py` where quarto is missing.

It runs nbdev's own documentation processing on every notebook (the step of `nbdev_docs` before quarto: front
matter, hidden cells, show_doc, links) and writes each processed notebook as an HTML page in the layout quarto uses
for the parts the check inspects (title block, sidebar, cells and their outputs, figure files, API entries), with
pandoc (Debian: `apt-get install pandoc`) turning markdown into HTML. It is not the published site: no theme, no
search, no navbar.

    python docs_tools/standin_site.py /tmp/standin && python docs_tools/check_site.py --site /tmp/standin
"""
import argparse, base64, html, json, os, re, shutil, subprocess, sys, time
from pathlib import Path

import yaml
from execnb.nbio import read_nb
from nbdev.config import get_config
from nbdev.doclinks import nbglob
from nbdev.processors import FilterDefaults

sys.path.insert(0, str(Path(__file__).parent))
from check_site import page_for  # noqa: E402

_ansi = re.compile(r"\x1B(?:[@-Z\\-_]|\[[0-?]*[ -/]*[@-~])")


def _text(value) -> str: return "".join(value) if isinstance(value, list) else value


def _fence(text: str, classes="") -> str:
    ticks = "`" * max(3, max((len(m) for m in re.findall(r"`+", text)), default=0) + 1)
    return f"{ticks}{classes}\n{text.rstrip()}\n{ticks}"


def _directives(source: str) -> dict:
    return {m.group(1): m.group(2).strip() for m in re.finditer(r"^\s*#\|\s*([\w-]+):\s*(.*)$", source, re.MULTILINE)}


def _links_to_pages(markdown: str) -> str:
    "Relative links to notebooks point at their pages, as quarto makes them."
    return re.sub(r"\]\(((?!https?:)[^)#\s]*?)\.ipynb(#[^)]*)?\)",
                  lambda m: f"]({page_for(m.group(1) + '.ipynb')}{m.group(2) or ''})", markdown)


def notebook_markdown(nb, figures: Path, figures_href: str) -> tuple:
    "The processed notebook as pandoc markdown, and its front matter."
    blocks, front = [], {}
    for index, cell in enumerate(nb.cells):
        source = cell.get("source")
        if source is None: continue
        if cell.cell_type == "raw" and source.startswith("---"):
            front = yaml.safe_load(source.strip().strip("-")) or {}
            continue
        if cell.cell_type != "code":
            blocks.append(_links_to_pages(source))
            continue
        options = _directives(source)
        if options.get("include") == "false": continue
        code = re.sub(r"^\s*#\|.*$\n?", "", source, flags=re.MULTILINE).strip("\n")
        parts = [_fence(code, "python")] if code and options.get("echo") != "false" else []
        for number, output in enumerate([] if options.get("output") == "false" else cell.get("outputs", []), start=1):
            kind, data = output["output_type"], output.get("data", {})
            if kind == "stream":
                parts.append(f"::: {{.cell-output .cell-output-{output['name']}}}\n{_fence(_ansi.sub('', _text(output['text'])))}\n:::")
            elif kind == "error":
                parts.append(f"::: {{.cell-output .cell-output-error}}\n{_fence(_ansi.sub('', chr(10).join(output['traceback'])))}\n:::")
            elif "image/png" in data:
                figures.mkdir(parents=True, exist_ok=True)
                name = f"cell-{index}-output-{number}.png"
                (figures / name).write_bytes(base64.b64decode(_text(data["image/png"])))
                parts.append(f"::: {{.cell-output .cell-output-display}}\n![]({figures_href}/{name})\n:::")
            elif "text/markdown" in data:
                markdown = _links_to_pages(_text(data["text/markdown"]))
                parts.append(markdown if options.get("output") == "asis" else f"::: {{.cell-output .cell-output-display}}\n{markdown}\n:::")
            elif "text/html" in data:
                parts.append(f"::: {{.cell-output .cell-output-display}}\n```{{=html}}\n{_text(data['text/html'])}\n```\n:::")
            elif "text/plain" in data:
                parts.append(f"::: {{.cell-output .cell-output-display}}\n{_fence(_text(data['text/plain']))}\n:::")
        if parts: blocks.append(":::: {.cell}\n" + "\n\n".join(parts) + "\n::::")
    return "\n\n".join(blocks), front


def sidebar_html(sidebar: Path, titles: dict, depth: int) -> str:
    "The sidebar of nbs/sidebar.yml as quarto-like HTML, with links relative to a page `depth` folders down."
    up = "../" * depth
    def items(contents):
        out = []
        for item in contents:
            if isinstance(item, str): item = {"href": item}
            if "section" in item:
                out.append(f'<li class="sidebar-item-section"><span class="sidebar-section">{html.escape(item["section"])}</span>'
                           f'<ul>{items(item.get("contents", []))}</ul></li>')
            else:
                text = item.get("text") or titles.get(item["href"], item["href"])
                out.append(f'<li class="sidebar-item"><a class="sidebar-link" href="{up}{page_for(item["href"])}">{html.escape(text)}</a></li>')
        return "".join(out)
    contents = yaml.safe_load(sidebar.read_text())["website"]["sidebar"]["contents"] if sidebar.exists() else []
    return f'<nav id="quarto-sidebar" class="sidebar"><ul>{items(contents)}</ul></nav>'


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="generator" content="pygenbrix docs_tools/standin_site.py">
<title>{title} – {site}</title><link rel="stylesheet" href="{up}styles.css"></head>
<body>{sidebar}
<main class="content" id="quarto-document-content">
<header id="title-block-header" class="quarto-title-block default"><div class="quarto-title"><h1 class="title">{title_html}</h1></div>
<div><div class="description">{description}</div></div></header>
{body}
</main></body></html>
"""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", help="folder to write the stand-in site to (emptied first)")
    args = parser.parse_args(argv)
    config, out = get_config(), Path(args.out)
    if shutil.which("pandoc") is None: raise SystemExit("pandoc is needed: apt-get install pandoc")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    notebooks = sorted(Path(f).relative_to(config.nbs_path).as_posix() for f in nbglob(config.nbs_path))
    titles = {}
    for notebook in notebooks:
        first = next(c for c in json.loads((config.nbs_path / notebook).read_text())["cells"] if c["cell_type"] == "markdown")
        titles[notebook] = re.search(r"^#\s+(.+)$", "".join(first["source"]), re.MULTILINE).group(1)
    failures = []
    for notebook in notebooks:
        started, page = time.time(), out / page_for(notebook)
        nb = read_nb(config.nbs_path / notebook)
        os.environ["IN_TEST"] = "1"
        try: FilterDefaults()(nb)
        except Exception as error:
            failures.append(notebook)
            print(f"FAILED   {notebook}: nbdev's docs processing fails, so nbdev_docs would too: {error}".splitlines()[0])
            continue
        finally: os.environ.pop("IN_TEST", None)
        figures = page.parent / f"{page.stem}_files" / "figure-html"
        markdown, front = notebook_markdown(nb, figures, f"{page.stem}_files/figure-html")
        body = subprocess.run(["pandoc", "-f", "markdown", "-t", "html5", "--mathml"], input=markdown,
                              capture_output=True, text=True, check=True).stdout
        depth = len(Path(notebook).parts) - 1
        title = front.get("title", titles[notebook])
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(PAGE.format(title=html.escape(re.sub(r"[`*]", "", title)), title_html=html.escape(re.sub(r"[`*]", "", title)),
                                    site=html.escape(config.title), up="../" * depth,
                                    description=html.escape(front.get("description", "")), body=body,
                                    sidebar=sidebar_html(config.nbs_path / "sidebar.yml", titles, depth)), encoding="utf-8")
        print(f"wrote    {page.relative_to(out)} ({time.time() - started:.1f}s)")
    shutil.copy(config.nbs_path / "styles.css", out / "styles.css")
    if failures: print(f"{len(failures)} notebook(s) failed nbdev's docs processing: {failures}")
    return 1 if failures else 0


if __name__ == "__main__": sys.exit(main())
