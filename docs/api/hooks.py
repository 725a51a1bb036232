"""MkDocs hooks of the site (mkdocs.yml: ``hooks:``).

- The site's name carries the package's version, and its repository link is the
  ``Repository`` (or ``Source``) URL of ``[project.urls]``: both read from pyproject.toml,
  their one source (no URL there, no link).
- The API index lists the reference pages, in the menu's order, each with its title and the
  first paragraph of its page, whole (markdown and links as written there).
- ```` ```python notest ```` fences (code that tests/test_docs.py does not run) render as
  ```` ```python ````: the marker is for the tests, and superfences would not take it.
- The API pages: the docstrings are Google style with reST cross-reference roles
  (``:func:`oriented```, ``:class:`~x.Y```), whose names mkdocstrings keeps as text; drop
  the roles, keeping a ``~`` that shortens a path (docs/api/links.py shows ``Y`` and links
  it), and reST's ``Example::`` before a literal block.
  Their math is written for pymdownx.arithmatex (``$...$``, ``$$...$$``), typeset by the
  site's own KaTeX copy (docs/assets/katex/).
"""

import re
import tomllib
from pathlib import Path

_NOTEST = re.compile(r"^([ \t]*```+[ \t]*python)[ \t]+notest\b", re.MULTILINE)
_LITERAL = re.compile(r"::</p>")
_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|attr|data|exc|obj|const|ref):\s*(<code>~?)")


_API_PAGES = "<!-- api-pages -->"


def on_config(config):
    project = tomllib.loads((Path(config.config_file_path).parent / "pyproject.toml").read_text("utf-8"))["project"]
    config.site_name = f"{config.site_name} {project['version']}"
    urls = project.get("urls", {})
    config.repo_url = config.repo_url or urls.get("Repository") or urls.get("Source")
    return config


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri == "api/index.md":
        markdown = markdown.replace(_API_PAGES, _api_pages(page, config))
    return _NOTEST.sub(r"\1", markdown)


def _api_pages(index, config):
    """A markdown list of the API pages besides ``index``: ``- [title](page) — first paragraph``."""
    docs = Path(config.docs_dir)
    items = []
    for title, uri in _nav_pages(config.nav):
        if uri.startswith("api/") and uri != index.file.src_uri:
            items.append(f"- [{title}]({Path(uri).name}) — {_first_paragraph((docs / uri).read_text('utf-8'))}")
    return "\n".join(items)


def _nav_pages(nav):
    """(title, page) of each titled page of mkdocs.yml's ``nav``, in order."""
    for entry in nav:
        if isinstance(entry, dict):
            for title, value in entry.items():
                if isinstance(value, str):
                    yield title, value
                else:
                    yield from _nav_pages(value)


def _first_paragraph(markdown):
    """The first paragraph after the page's ``# title``, joined into one line."""
    body = markdown.split("\n", 1)[1] if markdown.startswith("# ") else markdown
    paragraph = body.strip().split("\n\n", 1)[0]
    return " ".join(line.strip() for line in paragraph.splitlines())


def on_page_content(html, page, config, files):
    if not page.file.src_uri.startswith("api/"):
        return html
    html = _ROLE.sub(r"\1", html)
    return _LITERAL.sub(":</p>", html)
