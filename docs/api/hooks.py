"""MkDocs hooks of the site (mkdocs.yml: ``hooks:``).

- ```` ```python notest ```` fences (code that tests/test_docs.py does not run) render as
  ```` ```python ````: the marker is for the tests, and superfences would not take it.
- The API pages: the docstrings are Google style with reST cross-reference roles
  (``:func:`oriented```, ``:class:`~x.Y```), whose names mkdocstrings keeps as text; drop
  them (and the ``~`` that shortens a path), and reST's ``Example::`` before a literal block;
  a ``.. math::`` directive's LaTeX is shown as a code block (the site loads no math
  renderer: it works offline).
"""

import re

_NOTEST = re.compile(r"^([ \t]*```+[ \t]*python)[ \t]+notest\b", re.MULTILINE)
_LITERAL = re.compile(r"::</p>")
_MATH = re.compile(r"<p>\.\. math::\s*(.*?)</p>", re.DOTALL)
_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|attr|data|exc|obj|const|ref|math):\s*(<code>)~?")


def on_page_markdown(markdown, page, config, files):
    return _NOTEST.sub(r"\1", markdown)


def on_page_content(html, page, config, files):
    if not page.file.src_uri.startswith("api/"):
        return html
    html = _MATH.sub(r'<pre class="math"><code>\1</code></pre>', html)
    html = _ROLE.sub(r"\1", html)
    return _LITERAL.sub(":</p>", html)
