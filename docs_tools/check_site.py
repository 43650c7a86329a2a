"""Check the built documentation site in headless Chromium.

Run after `nbdev_docs` has written the site to `_docs/`:

    python docs_tools/check_site.py            # exit 1 and a list of problems if anything is wrong

It serves `_docs/` on a local port, opens every notebook's page in one headless Chromium (Debian: `apt-get install
chromium`; any Chrome works, see --browser) and checks, for each notebook in `nbs/`:
- its page exists, and its title is the notebook's H1 title;
- every image on it loads (shape diagrams, sample grids), and it shows at least as many images as the notebook has
  image outputs in cells that are not hidden;
- every `show_doc`, and every exported function or class (which nbdev documents on its own), has its API entry;
- nothing on it shows a rendering error: no error output or traceback, no unresolved cross-reference, no `#|`
  directive or raw markdown syntax left in the text, no unrendered math, no failed script or missing file;
- the sidebar of the home page links to it, and its links to other pages of the site resolve.
Requests that leave the machine are refused, so the check gives the same answer offline; a page that depends on
such a resource (a CDN) gets a warning.
"""
import argparse, ast, json, os, re, shutil, signal, subprocess, sys, tempfile, threading, time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from nbdev.config import get_config
from nbdev.doclinks import nbglob

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/svg+xml")
HIDING = {"hide", "export", "exports", "exporti", "default_exp"}


def page_for(notebook: str) -> str:
    "The site page nbdev and quarto make from `notebook` (relative to nbs/): numeric prefixes are dropped."
    path = Path(notebook)
    return (path.parent / (re.sub(r"^\d+_", "", path.stem) + ".html")).as_posix()


def _directives(source: str) -> dict:
    return {m.group(1): (m.group(2) or "").strip() for m in re.finditer(r"^\s*#\|\s*([\w-]+):?(.*)$", source, re.MULTILINE)}


def _plain(markdown: str) -> str:
    "Markdown inline text as a browser shows it: no backticks, emphasis markers or link targets."
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", markdown)
    return re.sub(r"\s+", " ", re.sub(r"[`*_]", "", text)).strip()


def expectations(nbs: Path, notebook: str) -> dict:
    "What the page of `notebook` must show: title, a minimum number of images, API entries."
    cells = json.loads((nbs / notebook).read_text(encoding="utf-8"))["cells"]
    title, images, api = None, 0, []
    for cell in cells:
        source = "".join(cell.get("source", ""))
        if cell["cell_type"] == "markdown" and title is None:
            heading = re.search(r"^#\s+(.+)$", source, re.MULTILINE)
            title = _plain(heading.group(1)) if heading else ""
        if cell["cell_type"] != "code": continue
        directives = _directives(source)
        exported = directives.keys() & {"export", "exports", "exec_doc"}
        if exported and "hide" not in directives:
            try: tree = ast.parse(source)
            except SyntaxError: tree = ast.Module(body=[], type_ignores=[])
            api += [node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                    and (not node.name.startswith("_") or node.name.startswith("__"))]
        if directives.keys() & HIDING or directives.get("output") == "false" or directives.get("include") == "false": continue
        api += re.findall(r"^show_doc\(\s*([\w.]+)", source, re.MULTILINE)
        images += sum(1 for output in cell.get("outputs", []) if set(output.get("data", {})) & set(IMAGE_TYPES))
    return {"notebook": notebook, "page": page_for(notebook), "title": title or "", "min_images": images,
            "api": sorted(set(api))}


# Runs first in every page served: records script errors and resources that failed to load.
CAPTURE = b"""<script>window.__siteCheck={errors:[]};addEventListener('error',function(e){var t=e.target;
if(t&&t!==window&&(t.src||t.href)){__siteCheck.errors.push({kind:'resource',url:t.src||t.href});}
else{__siteCheck.errors.push({kind:'script',message:String(e.message),source:String(e.filename||''),line:e.lineno||0});}},true);
addEventListener('unhandledrejection',function(e){__siteCheck.errors.push({kind:'script',message:'unhandled rejection: '+String(e.reason),source:'',line:0});});
</script>"""

HARNESS = """<!doctype html><html><head><meta charset="utf-8"><title>site check</title></head><body>
<script>
const pages = %(pages)s;
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));
async function post(path, body) {
  await fetch(path, {method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify(body)});
}
function textOf(element) { return element ? element.textContent.replace(/\\s+/g, ' ').trim() : null; }
async function inspect(page) {
  const frame = document.createElement('iframe');
  frame.style.width = '1280px'; frame.style.height = '900px';
  document.body.appendChild(frame);
  const loaded = new Promise(resolve => frame.addEventListener('load', resolve, {once: true}));
  frame.src = page;
  if (await Promise.race([loaded.then(() => true), sleep(%(page_timeout_ms)d).then(() => false)]) === false) {
    frame.remove(); return {page, loaded: false};
  }
  const doc = frame.contentDocument, win = frame.contentWindow;
  const images = [...doc.images];
  images.forEach(image => { if (image.loading === 'lazy') image.loading = 'eager'; });
  await Promise.race([
    Promise.all(images.map(image => image.complete ? null : new Promise(resolve => {
      image.addEventListener('load', resolve); image.addEventListener('error', resolve); }))),
    sleep(%(page_timeout_ms)d)]);
  await sleep(200);  // let the page's own scripts finish (search index, code copy buttons, math)
  const main = doc.querySelector('main#quarto-document-content') || doc.querySelector('main') || doc.body;
  const prose = [...main.querySelectorAll('p, li, h1, h2, h3, h4, td, figcaption')].map(textOf).join('\\n');
  const result = {
    page, loaded: true,
    title: textOf(doc.querySelector('#title-block-header h1, h1.title') || main.querySelector('h1')),
    images: [...main.querySelectorAll('img')].map(image => ({src: image.currentSrc || image.src,
      ok: image.complete && image.naturalWidth > 0, width: image.naturalWidth, height: image.naturalHeight})),
    headings: [...main.querySelectorAll('h1, h2, h3, h4, h5')].map(textOf),
    ids: [...doc.querySelectorAll('[id]')].map(element => element.id),
    error_outputs: [...main.querySelectorAll('.cell-output-error')].map(element => textOf(element).slice(0, 300)),
    tracebacks: (main.innerText.match(/Traceback \\(most recent call last\\)/g) || []),
    unresolved_refs: [...new Set([...main.querySelectorAll('.quarto-unresolved-ref')].map(textOf)
      .concat(prose.match(/\\?@[\\w-]+/g) || []))],
    leaked_directives: [...main.querySelectorAll('pre')].map(textOf)
      .filter(text => /(^|\\s)#\\|\\s*[\\w-]+/.test(text)).map(text => text.slice(0, 160)),
    raw_markdown: (prose.match(/^.*(:::|```|\\{target=|\\{\\.[\\w-]+|\\]\\([^)]*\\)).*$/gm) || []).map(line => line.slice(0, 160)),
    math: {total: main.querySelectorAll('.math').length,
           rendered: [...main.querySelectorAll('.math')].filter(element =>
             element.querySelector('math, mjx-container, .katex')).length,
           external_script: [...doc.scripts].some(script => script.src && /mathjax|katex/i.test(script.src))},
    links: [...doc.querySelectorAll('a[href]')].map(anchor => anchor.href),
    sidebar: [...doc.querySelectorAll('#quarto-sidebar a[href], nav.sidebar a[href]')].map(anchor => anchor.href),
    errors: (win.__siteCheck || {errors: []}).errors,
    text_length: main.innerText.length,
  };
  frame.remove();
  return result;
}
(async () => {
  for (const page of pages) {
    let result;
    try { result = await inspect(page); } catch (error) { result = {page, loaded: false, exception: String(error)}; }
    await post('/__check__/page', result);
  }
  await post('/__check__/done', {});
})();
</script></body></html>"""


class Site:
    "A local web server for the built site that records requests and the browser's reports."
    def __init__(self, root: Path, pages: list, page_timeout_s: float):
        self.root, self.results, self.missing, self.done = root, {}, [], threading.Event()
        site = self
        harness = (HARNESS % {"pages": json.dumps(["/" + page for page in pages]),
                              "page_timeout_ms": int(page_timeout_s * 1000)}).encode()

        class Handler(SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs): super().__init__(*args, directory=str(root), **kwargs)
            def log_message(self, *args): pass
            def end_headers(self):
                self.send_header("Cache-Control", "no-store")
                super().end_headers()
            def _send(self, body: bytes, kind="text/html; charset=utf-8"):
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            def do_GET(self):
                path = unquote(urlsplit(self.path).path)
                if path == "/__check__/harness.html": return self._send(harness)
                if path == "/favicon.ico" and not (root / "favicon.ico").exists(): return self._send(b"", "image/x-icon")
                file = site.file_for(path)
                if file is None:
                    site.missing.append((path, self.headers.get("Referer", "")))
                    return self.send_error(404)
                if file.suffix == ".html":
                    html = file.read_bytes()
                    head = re.search(rb"<head[^>]*>", html, re.IGNORECASE)
                    at = head.end() if head else 0
                    return self._send(html[:at] + CAPTURE + html[at:])
                return super().do_GET()
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if self.path == "/__check__/page":
                    site.results[body["page"].lstrip("/")] = body
                    print(f"  opened {body['page'].lstrip('/')}", flush=True)
                elif self.path == "/__check__/done": site.done.set()
                self._send(b"{}", "application/json")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def file_for(self, path: str):
        "The file that serves `path`, or None if there is none."
        file = (self.root / path.lstrip("/")).resolve()
        if not file.is_relative_to(self.root.resolve()): return None
        if file.is_dir(): file = file / "index.html"
        return file if file.is_file() else None

    def close(self): self.server.shutdown()


def find_browser(name=None) -> str:
    for candidate in ([name] if name else BROWSERS):
        found = shutil.which(candidate) or (candidate if candidate and Path(candidate).is_file() else None)
        if found: return found
    raise SystemExit("No Chromium found. Install it (Debian/Ubuntu: `sudo apt-get install -y chromium`) "
                     "or name one with --browser.")


def run_browser(browser: str, url: str, site: Site, timeout_s: float) -> bool:
    "Open `url` in headless Chromium and wait until the harness reports that it is done."
    with tempfile.TemporaryDirectory(prefix="site-check-") as profile:
        command = [browser, "--headless", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
                   "--disable-dev-shm-usage", "--disable-extensions", "--disable-background-networking",
                   "--mute-audio", f"--user-data-dir={profile}", "--window-size=1400,1000",
                   # Nothing leaves the machine, so the answer is the same offline and online.
                   "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", url]
        # No sandbox: it fails as root and under Ubuntu 24.04's user-namespace rules, and the pages are our own.
        command.insert(1, "--no-sandbox")
        browser_process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try: finished = site.done.wait(timeout_s)
        finally:
            try: os.killpg(browser_process.pid, signal.SIGTERM)
            except ProcessLookupError: pass
            try: browser_process.wait(10)
            except subprocess.TimeoutExpired: os.killpg(browser_process.pid, signal.SIGKILL)
    return finished


def internal_target(href: str, origin: str, site_url: str):
    "The site path and anchor that `href` points to, if it points into this site; else None."
    for prefix in (origin, site_url.rstrip("/")):
        if prefix and href.startswith(prefix + "/"):
            parts = urlsplit(href[len(prefix):])
            return unquote(parts.path).lstrip("/") or "index.html", parts.fragment
    return None


def evaluate(expected: list, site: Site, site_url: str) -> tuple:
    "Errors and warnings, each a (page, message) pair."
    errors, warnings = [], []
    results = site.results
    for item in expected:
        page, result = item["page"], results.get(item["page"])
        if result is None or not result.get("loaded"):
            errors.append((page, "the page did not load" + (f": {result['exception']}" if result and result.get("exception") else "")))
            continue
        if _plain(result.get("title") or "") != item["title"]:
            errors.append((page, f"title is {result.get('title')!r}; the notebook's H1 is {item['title']!r}"))
        local = [image for image in result["images"] if image["src"].startswith(site.origin + "/") or image["src"].startswith("data:")]
        broken = [image["src"].replace(site.origin + "/", "") for image in local if not image["ok"]]
        if broken: errors.append((page, f"{len(broken)} image(s) did not load: {broken[:5]}"))
        shown = sum(image["ok"] for image in local)
        if shown < item["min_images"]:
            errors.append((page, f"shows {shown} image(s); {item['notebook']} has {item['min_images']} image outputs"))
        headings = set(result["headings"])
        missing_api = [name for name in item["api"] if not any(h == name or h.startswith(name + " ") or h.endswith("." + name)
                                                                or h.startswith(name + "(") for h in headings)]
        if missing_api: errors.append((page, f"no API entry (show_doc) for {missing_api}"))
        for key, label in (("error_outputs", "error output"), ("tracebacks", "traceback"),
                           ("unresolved_refs", "unresolved cross-reference"), ("leaked_directives", "`#|` directive shown"),
                           ("raw_markdown", "unrendered markdown")):
            if result[key]: errors.append((page, f"{label}: {result[key][:3]}"))
        math = result["math"]
        if math["total"] > math["rendered"]:  # MathJax from a CDN cannot run here: a warning, not an error
            (warnings if math["external_script"] else errors).append(
                (page, f"{math['total'] - math['rendered']} of {math['total']} formulas not rendered"
                       + (" (the math script comes from a CDN, which this check does not reach)" if math["external_script"] else "")))
        for error in result["errors"]:
            if error["kind"] == "resource":
                if error["url"].startswith(site.origin): errors.append((page, f"failed to load {error['url']}"))
                else: warnings.append((page, f"needs {error['url']} from the network"))
            elif error.get("source", "").startswith(site.origin) or not error.get("source"):
                errors.append((page, f"script error: {error['message']} ({error.get('source', '')}:{error.get('line', '')})"))
            else: warnings.append((page, f"script error in {error['source']}: {error['message']}"))
        if result["text_length"] < 50: errors.append((page, "the page is (nearly) empty"))
    # Links between pages, and the reading order in the sidebar.
    ids = {page: set(result.get("ids", [])) for page, result in results.items()}
    broken_links, missing_anchors = {}, {}
    for page, result in results.items():
        for href in sorted(set(result.get("links", []))):
            target = internal_target(href, site.origin, site_url)
            if target is None: continue
            path, anchor = target
            if site.file_for("/" + path) is None: broken_links.setdefault(path, []).append(page)
            elif anchor and path in ids and anchor not in ids[path]: missing_anchors.setdefault(f"{path}#{anchor}", []).append(page)
    for path, pages in sorted(broken_links.items()): errors.append((path, f"pages link here but it does not exist: {pages}"))
    for target, pages in sorted(missing_anchors.items()): warnings.append((target, f"no such anchor, linked from {pages}"))
    home = results.get("index.html")
    if home:
        in_sidebar = {target[0] for href in home.get("sidebar", []) if (target := internal_target(href, site.origin, site_url))}
        absent = [item["page"] for item in expected if item["page"] not in in_sidebar]
        if absent: errors.append(("index.html", f"the sidebar does not link to {absent}"))
    for path, referer in site.missing:
        errors.append((referer.replace(site.origin + "/", "") or "?", f"requested a file the site does not have: {path}"))
    return errors, warnings


def check(site_root: Path, nbs: Path, site_url: str = "", browser: str = None, timeout_s: float = 300,
          page_timeout_s: float = 20) -> tuple:
    "Errors, warnings (lists of (page, message)) and the browser's findings per page, for the site built from `nbs`."
    site_root, nbs = Path(site_root), Path(nbs)
    if not (site_root / "index.html").is_file():
        raise SystemExit(f"{site_root}/index.html does not exist: build the site first (nbdev_docs).")
    notebooks = sorted(Path(f).relative_to(nbs).as_posix() for f in nbglob(nbs))
    expected = [expectations(nbs, notebook) for notebook in notebooks]
    missing_pages = [item for item in expected if not (site_root / item["page"]).is_file()]
    present = [item for item in expected if item not in missing_pages]
    browser = find_browser(browser)
    site = Site(site_root, [item["page"] for item in present], page_timeout_s)
    print(f"checking {len(present)} page(s) of {site_root} in {browser}", flush=True)
    try: finished = run_browser(browser, f"{site.origin}/__check__/harness.html", site, timeout_s)
    finally: site.close()
    errors, warnings = evaluate(present, site, site_url)
    errors = [(item["page"], f"missing: {item['notebook']} has no page") for item in missing_pages] + errors
    if not finished: errors.append(("-", f"the browser did not finish within {timeout_s:.0f}s"))
    for item in present:
        result = site.results.get(item["page"], {})
        if result.get("loaded"):
            print(f"  {item['page']}: {sum(i['ok'] for i in result['images'])} image(s), {len(item['api'])} API entries")
    return errors, warnings, site.results


def main(argv=None):
    config = get_config()
    parser = argparse.ArgumentParser(description="Check the built documentation site in headless Chromium.")
    parser.add_argument("--site", default=str(config.doc_path), help="the built site (default: %(default)s)")
    parser.add_argument("--browser", help=f"Chromium or Chrome executable (default: the first of {', '.join(BROWSERS)})")
    parser.add_argument("--timeout", type=float, default=300, help="seconds for the whole check (default: %(default)s)")
    parser.add_argument("--page-timeout", type=float, default=20, help="seconds for one page (default: %(default)s)")
    args = parser.parse_args(argv)
    started = time.time()
    errors, warnings, results = check(args.site, config.nbs_path, f"{config.doc_host}{config.doc_baseurl}", args.browser,
                                      args.timeout, args.page_timeout)
    by_message = {}
    for page, message in warnings: by_message.setdefault(message, []).append(page)
    for message, pages in by_message.items(): print(f"warning  {message}" + (f" ({', '.join(pages)})" if pages != ["-"] else ""))
    for page, message in errors: print(f"ERROR    {page}: {message}")
    images = sum(sum(image["ok"] for image in result.get("images", [])) for result in results.values())
    print(f"{len(results)} page(s), {images} image(s) checked in {time.time() - started:.1f}s: "
          f"{len(errors)} error(s), {len(warnings)} warning(s)")
    return 1 if errors else 0


if __name__ == "__main__": sys.exit(main())
