"""README.md is the front page on GitHub and the package's description on PyPI: every link in it works in both places,
and what it says about installing is true."""
import configparser, json, re
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = configparser.ConfigParser()
SETTINGS.read(ROOT/"settings.ini")
CONFIG = SETTINGS["DEFAULT"]
README = (ROOT/"README.md").read_text(encoding="utf-8")
LINK = re.compile(r"(!?)\[[^\]]*\]\(([^)\s]+)\)")


def heading_anchors(path: Path) -> set:
    "The anchors of the headings of a notebook's markdown cells (or of a markdown file), as GitHub and quarto make them."
    if path.suffix == ".ipynb":
        text = "\n".join("".join(cell["source"]) for cell in json.loads(path.read_text())["cells"] if cell["cell_type"] == "markdown")
    else: text = path.read_text(encoding="utf-8")
    headings = re.findall(r"^#+\s+(.+?)\s*$", text, re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower().replace("`", "")).strip().replace(" ", "-") for heading in headings}


def repository_file(url: str):
    "The file of this repository that a GitHub or Colab URL of it names, with its anchor; None for any other URL."
    for prefix in (f"{CONFIG['git_url']}/blob/{CONFIG['branch']}/",
                   f"https://colab.research.google.com/github/{CONFIG['user']}/{CONFIG['repo']}/blob/{CONFIG['branch']}/"):
        if url.startswith(prefix):
            path, _, anchor = url[len(prefix):].partition("#")
            return ROOT/path, anchor
    return None


def test_every_link_resolves():
    links = LINK.findall(README)
    assert len(links) > 20
    checked = 0
    for image, target in links:
        if not re.match(r"^https?://", target):
            # a relative link works on GitHub only; an image written beside README must at least exist
            assert image and (ROOT/target).is_file(), f"README links to {target!r}, which is not an absolute URL"
            continue
        found = repository_file(target)
        if found is None: continue  # another site's page
        path, anchor = found
        assert path.is_file(), f"README links to {target}, but the repository has no {path.relative_to(ROOT)}"
        if anchor: assert anchor in heading_anchors(path), f"README links to {target}, but {path.name} has no heading #{anchor}"
        checked += 1
    assert checked >= 26  # the notebooks and tutorials, and their Colab badges


def test_python_minimum_is_true():
    "The minimum Python that settings.ini declares (and README states) is one that every requirement held to a series installs on."
    minimum = CONFIG["min_python"]
    assert f"Python {minimum} or later" in README
    requirements = [Requirement(text) for text in (CONFIG["requirements"] + " " + CONFIG["dev_requirements"]).split()]
    for requirement in requirements:
        if not any(spec.operator in ("<", "<=", "==", "~=") for spec in requirement.specifier):
            continue  # no upper bound: on an older Python, pip picks an older release
        requires_python = metadata.metadata(requirement.name).get("Requires-Python")
        if requires_python and requirement.specifier.filter([metadata.version(requirement.name)]):
            assert SpecifierSet(requires_python).contains(Version(minimum)), \
                f"{requirement} (installed {metadata.version(requirement.name)}) requires Python {requires_python}; settings.ini says {minimum}"


def test_readme_shows_the_commands_of_a_run():
    commands = "\n".join(re.findall(r"```sh\n(.*?)```", README, re.DOTALL))
    for command in ("--resume", "--epochs", "--overwrite", "-conditional", "--label"):
        assert command in commands, command
    assert "--resume` is the way back" in README and "pytest" in README and "minutes" in README
