"""The site check passes a sound site and names each defect of a broken one.

Needs Chromium, so it is not part of the default `pytest` run: `pytest docs_tools` (about 5 s).
The sites here are small hand-written pages in the layout quarto gives nbdev notebooks.
"""
import base64, json
from pathlib import Path

import pytest

from check_site import check, find_browser

try: find_browser()
except SystemExit: pytest.skip("no Chromium installed", allow_module_level=True)

PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
SITE_URL = "https://example.github.io/demo"


def notebook(title, function=None, image=False):
    "A notebook with an H1 title, optionally an exported function and a cell with an image output."
    cells = [{"cell_type": "markdown", "metadata": {}, "source": [f"# {title}\n", "> A page for the check."]}]
    if function:
        cells.append({"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
                      "source": [f"#| export\ndef {function}(): return 1"]})
    if image:
        cells.append({"cell_type": "code", "metadata": {}, "execution_count": None, "source": ["plot()"],
                      "outputs": [{"output_type": "display_data", "metadata": {}, "data": {"image/png": PIXEL, "text/plain": ["<Figure>"]}}]})
    return {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def page(title, pages, function=None, image=None, extra="", title_shown=None, sidebar_skip=()):
    "A page in quarto's layout: sidebar, title block, API entry, figure."
    links = "".join(f'<a class="sidebar-link" href="/{p}">{p}</a>' for p in pages if p not in sidebar_skip)
    api = f'<h3 id="{function}" class="anchored">{function}</h3><p><em>Return one.</em></p>' if function else ""
    figure = (f'<div class="cell"><div class="cell-output cell-output-display"><img src="{image}" class="figure-img"></div></div>'
              if image else "")
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{title}</title></head><body>'
            f'<nav id="quarto-sidebar" class="sidebar">{links}</nav><main class="content" id="quarto-document-content">'
            f'<header id="title-block-header"><h1 class="title">{title_shown or title}</h1></header>'
            f'<p>Some prose about this part of the library, long enough to count as a page. '
            f'See <a href="{SITE_URL}/index.html">the start</a>.</p>{api}{figure}{extra}</main></body></html>')


def build(tmp: Path, defects: dict):
    "Notebooks and their site; `defects` maps a page name to what is wrong with it."
    nbs, site = tmp / "nbs", tmp / "site"
    names = ["index"] + [f"{number:02d}_{name}" for number, name in enumerate(defects, start=1)]
    pages = ["index.html"] + [f"{name}.html" for name in defects]
    nbs.mkdir()
    (nbs / "index.ipynb").write_text(json.dumps(notebook("Demo")))
    (site / "index_files").mkdir(parents=True)
    (site / "index.html").write_text(page("Demo", pages, sidebar_skip={f"{n}.html" for n, d in defects.items() if d == "not in sidebar"}))
    for file, (name, defect) in zip(names[1:], defects.items()):
        (nbs / f"{file}.ipynb").write_text(json.dumps(notebook(name.title(), function=f"{name}_function", image=True)))
        if defect == "no page": continue
        figures = site / f"{name}_files" / "figure-html"
        figures.mkdir(parents=True)
        if defect != "missing image file": (figures / "cell-2-output-1.png").write_bytes(base64.b64decode(PIXEL))
        extra = {"traceback": '<div class="cell-output cell-output-error"><pre>Traceback (most recent call last):\nValueError: bad</pre></div>',
                 "directive": '<div class="sourceCode"><pre><code>#| export\ndef f(): pass</code></pre></div>',
                 "script error": "<script>undefined_function_of_the_page()</script>",
                 "raw markdown": "<p>::: {.callout-note}</p>",
                 "unresolved reference": '<p>As <strong class="quarto-unresolved-ref">?@fig-shapes</strong> shows.</p>',
                 "math": '<p>The density <span class="math inline">\\(p(x)\\)</span>.</p>',
                 "broken link": '<p><a href="nowhere.html">a page that is not there</a></p>',
                 }.get(defect, "")
        (site / f"{name}.html").write_text(page(
            name.title(), pages, function=None if defect == "no API entry" else f"{name}_function",
            image=f"{name}_files/figure-html/cell-2-output-1.png", extra=extra,
            title_shown="Something else" if defect == "wrong title" else None))
    return nbs, site


def messages(errors, page): return " | ".join(message for where, message in errors if where == page)


def test_a_sound_site_passes(tmp_path):
    nbs, site = build(tmp_path, {"alpha": None, "beta": None})
    errors, warnings, results = check(site, nbs, SITE_URL, timeout_s=60)
    assert errors == [], errors
    assert sum(image["ok"] for image in results["alpha.html"]["images"]) == 1


def test_each_defect_is_named(tmp_path):
    defects = {"missingimage": "missing image file", "traceback": "traceback", "directive": "directive",
               "scripterror": "script error", "noapi": "no API entry", "rawmarkdown": "raw markdown",
               "unresolved": "unresolved reference", "math": "math", "nopage": "no page", "title": "wrong title",
               "brokenlink": "broken link", "hidden": "not in sidebar"}
    nbs, site = build(tmp_path, defects)
    errors, warnings, results = check(site, nbs, SITE_URL, timeout_s=90)
    expected = {"missingimage.html": "image(s) did not load", "traceback.html": "error output",
                "directive.html": "`#|` directive shown", "scripterror.html": "script error",
                "noapi.html": "no API entry (show_doc) for ['noapi_function']", "rawmarkdown.html": "unrendered markdown",
                "unresolved.html": "unresolved cross-reference", "math.html": "formulas not rendered",
                "nopage.html": "missing: 09_nopage.ipynb has no page", "title.html": "title is 'Something else'",
                "nowhere.html": "pages link here but it does not exist: ['brokenlink.html']",
                "index.html": "the sidebar does not link to ['hidden.html']"}
    for page, message in expected.items(): assert message in messages(errors, page), (page, errors)
    # Pages without a defect of their own stay clean, so a defect is reported where it is.
    assert messages(errors, "hidden.html") == "" and messages(errors, "brokenlink.html") == ""
