"""The built documentation site, as a reader gets it: the site is built once (``mkdocs build
--strict``, as ``make docs``) into a temporary folder and its HTML is checked.

- it works opened from disk (file://): every internal link, image, stylesheet and script
  resolves to a file, never a folder (so does every url() of a stylesheet: KaTeX's fonts),
  and search reads an inlined index;
- it loads nothing from outside the site (scripts, stylesheets, fonts, images);
- every image has alt text;
- the text a reader sees, outside code, holds no reST role or markdown markup, and none
  outside code blocks holds raw LaTeX (inline code neither: that is math shown raw);
- tables hold no escaped ``\\|`` and no paragraph swallowed as rows;
- the API tables mark *required* only single parameters that have no default;
- each page names the package's version and has its previous/next footer links.
- links read as titles, not file names, and code lines fit 88 characters (but the API
  pages' signatures and console output, verbatim);
- results tables are generated from their recorded runs (docs/results/*.json) and name
  them; tables no build reruns live once, in a snippet that says which run it is;
- the pages' exec blocks show their output; API signatures are formatted within 88
  columns; code spans that name an API class link to its entry.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]

# elements whose text is code, or not text at all, and an element typeset by a math renderer
_CODE_TAGS = {"code", "pre", "script", "style", "kbd", "samp", "textarea"}
_MATH_CLASS = "arithmatex"
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
# what a page loads by itself (as opposed to a link a reader may follow)
_LOADING_RELS = {"stylesheet", "preload", "prefetch", "preconnect", "dns-prefetch", "modulepreload", "icon", "manifest"}


@dataclass
class Page:
    """One built HTML page, parsed: what it loads and links, its images, its visible text."""

    path: Path
    links: list[str] = field(default_factory=list)  # <a href>
    loads: list[str] = field(default_factory=list)  # script, stylesheet, image, ... URLs
    images: list[dict[str, str | None]] = field(default_factory=list)
    prose: list[str] = field(default_factory=list)  # text outside code and math
    math_scope: list[str] = field(default_factory=list)  # text outside code blocks and typeset math
    text: list[str] = field(default_factory=list)  # all the text, code included (not scripts)
    table_text: list[str] = field(default_factory=list)  # all text inside tables, code included
    table_rows: list[list[str]] = field(default_factory=list)  # body rows' cell texts
    param_rows: list[list[str]] = field(default_factory=list)  # the API's parameter tables
    title: str = ""


class _PageParser(HTMLParser):
    def __init__(self, page: Page) -> None:
        super().__init__(convert_charrefs=True)
        self.page = page
        # (tag, hides its text from the prose check, hides it from the LaTeX check): LaTeX has
        # no business in inline code either, nor in a block shown as math (<pre class="math">)
        self.stack: list[tuple[str, bool, bool]] = []
        self.cells: list[str] | None = None
        self.param_table = False
        self.in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "a" and a.get("href") is not None:
            self.page.links.append(a["href"])
        elif tag in ("script", "img", "iframe", "source", "video", "audio", "embed") and a.get("src"):
            self.page.loads.append(a["src"])
        elif tag == "link" and a.get("href") and _LOADING_RELS & set((a.get("rel") or "").split()):
            self.page.loads.append(a["href"])
        if tag == "img":
            self.page.images.append(a)
        if tag == "title":
            self.in_title = True
        if tag == "table":
            self.param_table = False
        if tag == "tr":
            self.cells = []
        if tag in ("td", "th") and self.cells is not None:
            self.cells.append("")
        if tag not in _VOID:
            classes = (a.get("class") or "").split()
            typeset = _MATH_CLASS in classes
            code_block = tag in ("script", "style", "textarea") or (tag == "pre" and "math" not in classes)
            self.stack.append((tag, tag in _CODE_TAGS or typeset, code_block or typeset))

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
        if tag == "tr" and self.cells is not None:
            if self.cells[:4] == ["Name", "Type", "Description", "Default"]:
                self.param_table = True
            elif self.param_table:
                self.page.param_rows.append(self.cells)
            elif not self._inside("thead"):
                self.page.table_rows.append(self.cells)
            self.cells = None
        for i in range(len(self.stack) - 1, -1, -1):  # close up to the matching open tag
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.page.title += data
        if not self._inside("script") and not self._inside("style"):
            self.page.text.append(data)
        if self.cells:
            self.cells[-1] = (self.cells[-1] + data.strip()).strip()
        if self._inside("table"):
            self.page.table_text.append(data)
        if not any(hidden for _, hidden, _ in self.stack):
            self.page.prose.append(data)
        if not any(hidden for _, _, hidden in self.stack):
            self.page.math_scope.append(data)

    def _inside(self, tag: str) -> bool:
        return any(t == tag for t, _, _ in self.stack)


def parse_page(path: Path) -> Page:
    page = Page(path)
    parser = _PageParser(page)
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    return page


@pytest.fixture(scope="session")
def site(tmp_path_factory) -> Path:
    """The site, built as ``make docs`` builds it (strict: any warning fails the build)."""
    for module in ("mkdocs", "material", "mkdocstrings"):
        pytest.importorskip(module, reason=f"{module} is not installed (the docs extra: pip install -e '.[docs]')")
    out = tmp_path_factory.mktemp("site")
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT, capture_output=True, text=True, env=os.environ | {"NO_MKDOCS_2_WARNING": "1"},
    )
    assert build.returncode == 0, f"mkdocs build --strict failed:\n{build.stdout}\n{build.stderr}"
    return out


@pytest.fixture(scope="session")
def pages(site) -> list[Page]:
    # 404.html is served by a web server for a missing URL, so its links are absolute
    # (from the server's root): it is never opened from disk
    parsed = [parse_page(p) for p in sorted(site.rglob("*.html")) if p.name != "404.html"]
    assert len(parsed) > 40, "the site lost pages"
    return parsed


def _is_external(url: str) -> bool:
    return bool(urlsplit(url).scheme) or url.startswith("//")


def _where(site: Path, page: Page) -> str:
    return str(page.path.relative_to(site))


def _problems(found: list[str]) -> str:
    return f"{len(found)} found:\n" + "\n".join(found[:40])


def test_internal_links_and_resources_resolve_to_files(site, pages):
    """Opened from disk, a link to a folder shows a folder listing, and a missing file is a 404."""
    broken = []
    for page in pages:
        for url in page.links + page.loads:
            parts = urlsplit(url)
            if _is_external(url) or not parts.path:  # an external link, or an anchor on the page
                continue
            if parts.path.startswith("/"):
                broken.append(f"{_where(site, page)}: {url} (absolute: only a server resolves it)")
                continue
            target = (page.path.parent / unquote(parts.path)).resolve()
            if not target.is_file():
                kind = "a folder, not a file" if target.is_dir() else "missing"
                broken.append(f"{_where(site, page)}: {url} ({kind})")
    assert not broken, "broken links: " + _problems(broken)


def test_stylesheets_fonts_and_images_resolve_to_files(site):
    """A stylesheet's url() (KaTeX's fonts among them) is read relative to the stylesheet."""
    broken = []
    for css in site.rglob("*.css"):
        for url in re.findall(r"""url\(\s*['"]?([^'")\s]+)""", css.read_text("utf-8")):
            path = urlsplit(url).path
            if _is_external(url) or not path:  # external (its own test), data: URIs, fragments
                continue
            if not (css.parent / unquote(path)).resolve().is_file():
                broken.append(f"{css.relative_to(site)}: {url}")
    assert not broken, "stylesheet urls that are not files: " + _problems(broken)


def test_search_works_from_disk(site):
    """Material's offline plugin inlines the search index into a script a file:// page can load."""
    index = site / "search" / "search_index.js"
    assert index.is_file(), "no search/search_index.js: search cannot start from disk (the offline plugin)"
    assert index.read_text(encoding="utf-8").startswith("var __index = {")


def test_pages_load_nothing_from_outside_the_site(site, pages):
    external = [f"{_where(site, p)}: {url}" for p in pages for url in p.loads if _is_external(url)]
    for css in site.rglob("*.css"):  # fonts and imports a stylesheet would fetch
        for url in re.findall(r"""(?:@import\s+|url\()\s*['"]?((?:https?:)?//[^'")\s]+)""", css.read_text("utf-8")):
            external.append(f"{css.relative_to(site)}: {url}")
    assert not external, "external resources: " + _problems(external)


def test_every_image_has_alt_text(site, pages):
    missing = [f"{_where(site, p)}: {img.get('src')}" for p in pages for img in p.images if not (img.get("alt") or "").strip()]
    assert not missing, "images without alt text: " + _problems(missing)


def _find(site: Path, pages: list[Page], pattern: re.Pattern, texts) -> list[str]:
    found = []
    for page in pages:
        text = "".join(texts(page))
        for m in pattern.finditer(text):
            found.append(f"{_where(site, page)}: ...{text[max(0, m.start() - 40):m.end() + 40]!r}...")
    return found


_REST_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|data|exc|obj|const|ref|math|doc):`?")
# bold or code markers, or a link's "](", that markdown left as text
_MARKDOWN = re.compile(r"\*\*|`|\]\(")
_LATEX = re.compile(
    r"\\(?:mathrm|mathbb|mathcal|mathbf|operatorname|text|frac|sqrt|sum|prod|int|log|exp|max|min|argmax|argmin"
    r"|alpha|beta|gamma|delta|epsilon|varepsilon|theta|lambda|mu|sigma|tau|nabla|partial|cdot|times|top"
    r"|in|le|ge|leq|geq|neq|approx|sim|mid|infty|left|right|quad|hat|tilde|bar|langle|rangle|lVert|rVert)\b"
)


def test_no_rest_roles_in_rendered_text(site, pages):
    found = _find(site, pages, _REST_ROLE, lambda p: p.prose)
    assert not found, "reST roles outside code: " + _problems(found)


def test_no_markdown_markup_in_rendered_text(site, pages):
    found = _find(site, pages, _MARKDOWN, lambda p: p.prose)
    assert not found, "markdown markup left as text outside code: " + _problems(found)


def test_no_raw_latex_in_rendered_text(site, pages):
    found = _find(site, pages, _LATEX, lambda p: p.math_scope)
    assert not found, "raw LaTeX outside code blocks and typeset math: " + _problems(found)


def test_tables_hold_no_escaped_pipes(site, pages):
    """A ``\\|`` in a table's code span is printed with its backslash (Python-Markdown)."""
    found = _find(site, pages, re.compile(r"\\\|"), lambda p: p.table_text)
    assert not found, "literal '\\|' in tables: " + _problems(found)


def test_no_paragraph_is_swallowed_by_a_table(site, pages):
    """Text right under a table, with no blank line, becomes rows with only a first cell."""
    junk = [
        f"{_where(site, p)}: {row}" for p in pages for row in p.table_rows
        if len(row) > 1 and row[0] and not any(row[1:])
    ]
    assert not junk, "table rows with only their first cell: " + _problems(junk)


def test_api_tables_mark_required_only_parameters_without_default(site, pages):
    """A docstring entry griffe cannot match to the signature (several names, ``**kw``) would
    lose its default and read *required* (docs/api/griffe_parameters.py splits them)."""
    wrong = [
        f"{_where(site, p)}: {row[0]}" for p in pages for row in p.param_rows
        if row[3] == "required" and not row[0].isidentifier()
    ]
    assert not wrong, "'required' on entries that are not one plain parameter: " + _problems(wrong)
    assert sum(len(p.param_rows) for p in pages) > 50, "the API pages lost their parameter tables"


def test_every_page_shows_the_version(site, pages):
    version = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]["version"]
    without = [_where(site, p) for p in pages if version not in p.title]
    assert not without, f"pages whose title lacks the version {version}: " + _problems(without)


def test_pages_link_their_neighbours_in_the_footer(site):
    """navigation.footer: every page but the first and the last links the previous and next."""
    quickstart = (site / "tutorials" / "quickstart.html").read_text(encoding="utf-8")
    assert re.search(r'href="\.\./index\.html" class="md-footer__link md-footer__link--prev"', quickstart)
    assert re.search(r'href="custom-ilp\.html" class="md-footer__link md-footer__link--next"', quickstart)


def test_install_lines_quote_their_extras(site, pages):
    """zsh reads an unquoted ``imle_solvers[torch]`` as a file pattern and fails."""
    found = _find(site, pages, re.compile(r"pip install (?:-\S+ )*imle_solvers\["), lambda p: p.text)
    assert not found, "install lines zsh cannot run: " + _problems(found)


_FOLLOW_UP: set[str] = set()  # pages exempt from the two checks below (none now)
_ANCHOR = re.compile(r"<a\b[^>]*>(.*?)</a>", re.DOTALL)
_PRE = re.compile(r"<pre\b[^>]*>.*?</pre>", re.DOTALL)
_CODE = re.compile(r"<code\b[^>]*>.*?</code>", re.DOTALL)
_TAG = re.compile(r"<[^>]+>")


def _docs_pages(site: Path, pages: list[Page]) -> list[Page]:
    return [p for p in pages if _where(site, p) not in _FOLLOW_UP]


def test_links_read_as_titles_not_file_names(site, pages):
    """A link reads as the page's title or a phrase ("Parallel solving"), never "parallel.md"."""
    found = []
    for page in _docs_pages(site, pages):
        html = _PRE.sub("", page.path.read_text(encoding="utf-8"))
        for m in _ANCHOR.finditer(html):
            text = unescape(_TAG.sub("", _CODE.sub("", m.group(1)))).strip()
            if text.endswith((".md", ".html")):
                found.append(f"{_where(site, page)}: {text!r}")
    assert not found, "links that read as file names: " + _problems(found)


_WIDTH = 88
_BLOCK = re.compile(r"<pre\b(?P<attrs>[^>]*)>(?P<body>.*?)</pre>", re.DOTALL)
# a line the console lexer marks as program output (Generic.Output): the program's, verbatim
_OUTPUT_LINE = re.compile(r'^(?:<span></span>)?(?:<code>)?<span class="go">[^<]*</span>$')


def _checked_lines(body: str) -> list[str]:
    """The lines of a code block that must fit: all but a console block's output lines
    (the CLI's messages on cli.md, spec.md's error listings), which stay as printed."""
    return [unescape(_TAG.sub("", line)) for line in body.split("\n") if not _OUTPUT_LINE.match(line)]


def test_code_lines_fit_88_characters(site, pages):
    """Pages' code blocks are written within 88 columns, so none runs past a desktop window.
    The API pages (api/) are left out: their signatures are printed by mkdocstrings."""
    found = []
    for page in _docs_pages(site, pages):
        where = _where(site, page)
        if where.startswith("api/"):
            continue
        for m in _BLOCK.finditer(page.path.read_text(encoding="utf-8")):
            if 'class="math"' in m.group("attrs"):
                continue
            for line in _checked_lines(m.group("body")):
                if len(line) > _WIDTH:
                    found.append(f"{where}: {len(line)}: {line[:70]}...")
    assert not found, f"code lines over {_WIDTH} characters: " + _problems(found)


# --- one source for every measured figure (docs/results/) ---------------------------------

RESULTS = ROOT / "docs" / "results"
_MARKER = re.compile(r"^<!-- results: (?P<record>[\w-]+) (?P<table>[\w-]+) -->$", re.MULTILINE)
_SNIPPET = re.compile(r'^--8<-- "(?P<name>[\w.-]+)"$', re.MULTILINE)


def _results_hook():
    import importlib.util

    spec = importlib.util.spec_from_file_location("results_hook", RESULTS / "hook.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _sources() -> dict[str, str]:
    """Each page's markdown by its path below docs/ (the snippets in docs/results/ aside)."""
    docs = ROOT / "docs"
    return {
        str(p.relative_to(docs)): p.read_text("utf-8")
        for p in sorted(docs.rglob("*.md")) if p.parent != RESULTS
    }


def _html_page(site: Path, source: str) -> Page:
    return parse_page(site / Path(source).with_suffix(".html"))


def _squeeze(text: str) -> str:
    """A cell compared without its markup and spaces (the parser strips each text piece)."""
    return re.sub(r"\s+|\*\*|`", "", unescape(text))


def _markdown_rows(table: str) -> list[list[str]]:
    lines = [line for line in table.splitlines() if line.startswith("|")][2:]  # body rows
    return [[_squeeze(c) for c in line.strip("|").split(" | ")] for line in lines]


def test_generated_tables_are_the_records_tables(site):
    """Each results marker became its table, rendered from its JSON record, and the line
    above it names that run (date, commands) and links the record."""
    hook, checked = _results_hook(), 0
    for source, markdown in _sources().items():
        for m in _MARKER.finditer(markdown):
            record = json.loads((RESULTS / f"{m['record']}.json").read_text("utf-8"))
            page = _html_page(site, source)
            rows = [[_squeeze(c) for c in row] for row in page.table_rows]
            expected = _markdown_rows(hook.TABLES[m["record"], m["table"]](record))
            assert all(row in rows for row in expected), f"{source}: the {m['record']} {m['table']} table"
            text = "".join(page.prose)
            assert f"recorded run: " in text and record["date"] in text, f"{source}: no provenance line"
            link = posixpath.relpath(f"results/{m['record']}.json", posixpath.dirname(source) or ".")
            assert link in page.links and (page.path.parent / link).is_file(), f"{source}: record not linked"
            checked += 1
    assert checked >= 19, "pages lost their generated tables"


def test_generated_tables_hold_the_records_figures(site):
    """Spot checks written apart from the hook: the figures are the JSON's, rounded."""
    record = json.loads((RESULTS / "pyepo-example.json").read_text("utf-8"))
    rows = {row[0]: row for row in _html_page(site, "gallery/pyepo.md").table_rows}
    for seed, r in record["results"].items():
        assert rows[seed][1:3] == [f"{r['normalized_regret_before']:.3f}", f"{r['normalized_regret']:.3f}"]
        assert rows[seed][4] == f"{100 * r['cost_accuracy']:.1f}%"
    record = json.loads((RESULTS / "distribution.json").read_text("utf-8"))
    rows = {row[0]: row for row in _html_page(site, "gallery/distribution.md").table_rows}
    for tau, s in record["results"]["metrics"]["sampling"].items():
        assert rows[tau][3] == str(s["distinct paths"])
    record = json.loads((RESULTS / "padded-text.json").read_text("utf-8"))
    rows = {row[0]: row for row in _html_page(site, "instances.md").table_rows}
    for name in ("no mask, k=3", "mask, k=3", "mask, k per length"):
        assert rows[name][1] == f"{record['results']['metrics'][name]['r2']:.3f}"
    record = json.loads((RESULTS / "tsp-portfolio.json").read_text("utf-8"))
    rows = {row[0]: row for row in _html_page(site, "problems.md").table_rows}
    assert rows["10 (45)"][1] == f"{1e3 * record['results']['bench']['cases']['TSP, 10 nodes (45 edges)']['median']:.3g} ms"
    record = json.loads((RESULTS / "instances.json").read_text("utf-8"))
    rows = [row for row in _html_page(site, "instances.md").table_rows if row[:2] == ["scip", "1"]]
    scip = next(r for r in record["results"]["bench"]["ilp"] if r["backend"] == "scip")
    assert rows and rows[0][4] == f"{scip['same 1'] / scip['plain 1']:.2f}"


def test_no_page_holds_a_copy_of_a_recorded_table():
    """A generated table's header, or a row of a recorded snippet, written into a page
    would be a second copy that no rerun updates."""
    hook, sources = _results_hook(), _sources()
    copies = []
    for (name, table), render in hook.TABLES.items():
        header = render(json.loads((RESULTS / f"{name}.json").read_text("utf-8"))).split("\n")[0]
        copies += [f"{s}: {name} {table}" for s, md in sources.items() if header in md]
    for snippet in RESULTS.glob("*.md"):
        rows = [line for line in snippet.read_text("utf-8").splitlines() if line.startswith("| ")][1:]
        copies += [f"{s}: a row of {snippet.name}" for s, md in sources.items() for row in rows if row in md]
    assert not copies, "hand copies of recorded tables: " + _problems(copies)


def test_recorded_snippets_say_which_run(site):
    """Each snippet (a table no build reruns) names its command and date, and is shown."""
    for snippet in RESULTS.glob("*.md"):
        head = snippet.read_text("utf-8").split("\n\n")[0]
        assert "recorded run of `" in head and re.search(r"\d{4}-\d{2}-\d{2}", head), snippet.name
        users = [s for s, md in _sources().items() if f'--8<-- "{snippet.name}"' in md]
        assert users, f"{snippet.name} is included nowhere"
        for source in users:
            text = "".join(_html_page(site, source).prose)
            assert "Not generated: a recorded run of" in text, f"{source}: {snippet.name} not rendered"


# --- real outputs, formatted signatures, linked names ------------------------------------

_EXEC_FENCE = re.compile(r'^[ \t]*```python exec="on"(?P<options>[^\n]*)$', re.MULTILINE)
_RESULT = re.compile(r'<div class="result"[^>]*>(.*?)</div>', re.DOTALL)


def test_pages_with_exec_blocks_show_their_output(site):
    """Every ``exec="on"`` block that prints (source="block") shows non-empty output,
    computed at build; the tutorials all run."""
    pages = 0
    for source, markdown in _sources().items():
        shown = [m for m in _EXEC_FENCE.finditer(markdown) if 'source="block"' in m["options"]]
        if not shown:
            continue
        html = (site / Path(source).with_suffix(".html")).read_text("utf-8")
        outputs = [unescape(_TAG.sub("", body)).strip() for body in _RESULT.findall(html)]
        assert len(outputs) == len(shown) and all(outputs), f"{source}: {len(shown)} blocks, outputs {outputs}"
        pages += 1
    tutorials = [s for s in _sources() if s.startswith("tutorials/")]
    assert all(_EXEC_FENCE.search(_sources()[s]) for s in tutorials), "a tutorial whose code does not run at build"
    assert pages >= 8


def test_api_signatures_are_formatted_within_88_columns(site):
    """ruff formats mkdocstrings' signatures (line_length 88): long ones break per parameter."""
    long, multiline = [], 0
    for path in sorted((site / "api").glob("*.html")):
        for body in re.findall(r'<div class="doc-signature[^"]*"[^>]*>(.*?)</div>', path.read_text("utf-8"), re.DOTALL):
            lines = unescape(_TAG.sub("", body)).strip().splitlines()
            multiline += len(lines) > 1
            long += [f"{path.name}: {line[:60]}..." for line in lines if len(line) > _WIDTH]
    assert not long, "signature lines over 88 characters: " + _problems(long)
    assert multiline > 20, "signatures are not formatted (is ruff installed?)"


def test_code_spans_naming_api_classes_link_to_them(site, pages):
    """A code span that names one documented class (``IMLE``, ``ims.SumOfGamma(k=5)``) is
    a link to its API entry, on every page, docstrings included."""
    ids = {i for p in pages if _where(site, p).startswith("api/")
           for i in re.findall(r'\bid="(imle_solvers(?:\.\w+)+)"', p.path.read_text("utf-8"))}
    last = {}
    for i in ids:
        last.setdefault(i.rsplit(".", 1)[1], set()).add(i)
    unique = {name for name, found in last.items() if len(found) == 1 and name[0].isupper()}
    skip = re.compile(r"<pre\b.*?</pre>|<a\b.*?</a>|<h[1-6]\b.*?</h[1-6]>|<title>.*?</title>", re.DOTALL)
    unlinked, linked = [], 0
    for page in pages:
        html = page.path.read_text("utf-8")
        linked += len(re.findall(r'<a class="autorefs autorefs-internal"[^>]*><code>', html))
        for name in re.findall(r"<code>(?:ims\.)?([A-Z]\w*)(?:\([^<]*\))?</code>", skip.sub("", html)):
            if name in unique:
                unlinked.append(f"{_where(site, page)}: {name}")
    assert not unlinked, "API class names not linked: " + _problems(unlinked)
    assert linked > 500, "the pages lost their API links"


def test_shortened_cross_references_show_the_last_name(site, pages):
    """A docstring's ``:class:`~a.b.C``` shows ``C``, linked, never the full path or the ``~``."""
    api = [p for p in pages if _where(site, p).startswith("api/")]
    texts = "".join(p.path.read_text("utf-8") for p in api)
    assert not re.findall(r"<code>~", texts), "a ~ left in a cross-reference"
    # torch.py's docstring: (:class:`~imle_solvers.options.NoiseOptions`: ``seed``, ...
    torch_page = next(p for p in api if _where(site, p) == "api/torch.html").path.read_text("utf-8")
    assert re.search(r'href="options\.html#imle_solvers\.options\.NoiseOptions"><code>NoiseOptions</code></a>',
                     torch_page)
    assert "<code>imle_solvers.options.NoiseOptions</code>" not in torch_page


# a measured figure: a decimal, a share, a ratio or a time (a bare integer is as often a setting)
_FIGURE = re.compile(r"^\**[-+]?(?:\d[\d,]*\.\d+|\d[\d,.]*(?:%|x| ms| s))\**(?: ± [\d.]+)?(?: \([^)]*\))?$")


def _measured_tables(markdown: str):
    """(line, header) of each table in ``markdown`` with at least three cells that are
    figures (``0.074``, ``37.7%``, ``26.3x``, ``0.1887 ± 0.0282``), and the text above it."""
    lines = markdown.split("\n")
    i = 0
    while i < len(lines):
        if lines[i].startswith("|") and (i == 0 or not lines[i - 1].startswith("|")):
            j = i
            while j < len(lines) and lines[j].startswith("|"):
                j += 1
            cells = [c.strip() for row in lines[i + 2:j] for c in row.strip("|").split("|")]
            if sum(bool(_FIGURE.match(c)) for c in cells) >= 3:
                yield i + 1, lines[i], "\n".join(lines[max(0, i - 4):i])
            i = j
        i += 1


def test_every_hand_written_results_table_says_it_is_a_recorded_run():
    """A table of measured figures is generated from its record, or says, just above it,
    that it is not, and which run it comes from (command and date)."""
    unmarked = []
    for source, markdown in _sources().items():
        if source.startswith("api/"):
            continue
        for line, header, above in _measured_tables(markdown):
            if not re.search(r"\*Not generated: .*recorded run.*\d{4}-\d{2}-\d{2}", above.replace("\n", " ")):
                unmarked.append(f"{source}:{line}: {header[:60]}")
    assert not unmarked, "measured tables neither generated nor marked: " + _problems(unmarked)
