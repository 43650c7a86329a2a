"""Write README.md from nbs/index.ipynb without quarto.

`nbdev_readme` (and `nbdev_docs`, which calls it) renders the index notebook to GitHub markdown with quarto.
This script does the same job in pure Python: it runs nbdev's own documentation processors on the notebook
(front matter, hidden cells, `#|` directives, links to the API pages) and writes the processed cells as GitHub
markdown, in the layout quarto's `gfm` writer uses. Images in outputs go to `index_files/figure-commonmark/`.

    python docs_tools/make_readme.py          # write README.md (and its images)
    python docs_tools/make_readme.py --check  # exit 1 with a diff if README.md is not what index.ipynb gives
"""
import argparse, base64, difflib, os, posixpath, re, sys
from pathlib import Path

import yaml
from execnb.nbio import read_nb
from nbdev.config import get_config
from nbdev.processors import FilterDefaults

_directive = re.compile(r"^\s*#\|.*$\n?", re.MULTILINE)


def _directives(source: str) -> dict:
    "The quarto `#| key: value` options of a processed cell."
    return dict(m.groups() for m in re.finditer(r"^\s*#\|\s*([\w-]+):\s*(.*?)\s*$", source, re.MULTILINE))


def _text(value) -> str: return "".join(value) if isinstance(value, list) else value
def _indent(text: str) -> str: return "\n".join("    " + line if line else "" for line in text.rstrip("\n").split("\n"))


def _output_markdown(output, images: dict, image_name: str) -> str:
    "One cell output as GitHub markdown; images are added to `images` (path -> bytes)."
    kind = output["output_type"]
    if kind == "stream": return _indent(_text(output["text"]))
    if kind == "error":
        raise ValueError(f"the README notebook has an error output ({output['ename']}: {output['evalue']}); "
                         "run it again so that its outputs are clean")
    data = output.get("data", {})
    for mime, suffix in (("image/png", "png"), ("image/jpeg", "jpg")):
        if mime in data:
            path = f"{image_name}.{suffix}"
            images[path] = base64.b64decode(_text(data[mime]))
            return f"![]({path})"
    if "image/svg+xml" in data:
        path = f"{image_name}.svg"
        images[path] = _text(data["image/svg+xml"]).encode()
        return f"![]({path})"
    if "text/markdown" in data: return _text(data["text/markdown"]).strip("\n")
    if "text/html" in data: return _text(data["text/html"]).strip("\n")
    if "text/plain" in data: return _indent(_text(data["text/plain"]))
    return ""


_link = re.compile(r"(\]\()([^)\s]+)(\))")


def absolute_links(markdown: str, config) -> str:
    """`markdown` with its relative links made absolute GitHub URLs of the notebooks' folder (`git_url/blob/branch/nbs/...`).

    The index notebook's links are relative to `nbs/`, where the documentation site resolves them; README.md sits at the
    repository root and is also the package's description on PyPI, where only absolute links work."""
    folder = Path(os.path.relpath(config.nbs_path, config.config_path)).as_posix()
    def absolute(match):
        target = match.group(2)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"): return match.group(0)
        path, _, anchor = target.partition("#")
        url = f"{config.git_url}/blob/{config.branch}/{posixpath.normpath(posixpath.join(folder, path))}"
        return f"{match.group(1)}{url}{'#' + anchor if anchor else ''}{match.group(3)}"
    return _link.sub(absolute, markdown)


def render_readme(config=None) -> tuple:
    "README.md's text and its images `{relative path: bytes}`, from the processed readme notebook."
    config = config or get_config()
    notebook = config.nbs_path / config.get("readme_nb", "index.ipynb")
    nb = read_nb(notebook)
    previous = os.environ.get("IN_TEST")
    os.environ["IN_TEST"] = "1"  # as nbdev's docs processing does: notebooks may skip slow work when rendering docs
    try: FilterDefaults()(nb)
    finally:
        if previous is None: del os.environ["IN_TEST"]
        else: os.environ["IN_TEST"] = previous
    figures = f"{notebook.stem}_files/figure-commonmark"
    blocks, images = [], {}
    for index, cell in enumerate(nb.cells):
        source = cell.get("source")
        if source is None: continue  # hidden, exported or default_exp cells lose their source in processing
        if cell.cell_type == "raw" and source.startswith("---"):
            front = yaml.safe_load(source.strip().strip("-")) or {}
            blocks.append(f"# {front.get('title', config.title)}")
            if front.get("description"): blocks.append(f"> {front['description']}")
            continue
        if cell.cell_type in ("markdown", "raw"):
            if source.strip(): blocks.append(absolute_links(source.strip("\n"), config))
            continue
        options = _directives(source)
        if options.get("include") == "false": continue
        code = _directive.sub("", source).strip("\n")
        if code and options.get("echo") != "false": blocks.append(f"``` python\n{code}\n```")
        if options.get("output") == "false": continue
        for number, output in enumerate(cell.get("outputs", []), start=1):
            markdown = _output_markdown(output, images, f"{figures}/cell-{index}-output-{number}")
            if markdown: blocks.append(markdown)
    return "\n\n".join(blocks).rstrip() + "\n", images


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 if README.md is out of date")
    args = parser.parse_args(argv)
    config = get_config()
    text, images = render_readme(config)
    root, readme = config.config_path, config.config_path / "README.md"
    stale = [path for path, content in images.items() if not (root / path).exists() or (root / path).read_bytes() != content]
    if args.check:
        current = readme.read_text(encoding="utf-8") if readme.exists() else ""
        if current == text and not stale: return 0
        sys.stdout.writelines(difflib.unified_diff(current.splitlines(True), text.splitlines(True), "README.md",
                                                   f"README.md from {config.get('readme_nb', 'index.ipynb')}"))
        if stale: print("images out of date:", *stale)
        print("README.md is out of date: run `python docs_tools/make_readme.py` and commit the result.", file=sys.stderr)
        return 1
    readme.write_text(text, encoding="utf-8")
    for path, content in images.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(content)
    print(f"wrote {readme}" + (f" and {len(images)} image(s) under {root / next(iter(images)).rsplit('/', 1)[0]}" if images else ""))
    return 0


if __name__ == "__main__": sys.exit(main())
