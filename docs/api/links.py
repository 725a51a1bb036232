"""MkDocs hook (mkdocs.yml ``hooks:``): every code span that names a public API object links
to its entry in the API reference.

When every page is rendered, and before mkdocs-autorefs resolves cross-references (its
``on_env`` runs at priority -50), the hook reads the identifiers the API pages define
(mkdocstrings' headings, ``id="imle_solvers.estimators.IMLE"``) and wraps each inline
``<code>`` that names one of them in an optional autorefs reference, which autorefs turns
into a link. A span names an object when, after an ``ims.`` / ``imle_solvers.`` prefix and
trailing call arguments are set aside, it is:

- a documented identifier (``imle_solvers.metrics.normalized_regret``), or one below the
  package (``torch.IMLELayer``, ``metrics.evaluate``, ``MAPOracle.solve_with``) with a
  single match;
- a class name alone (``IMLE``, ``SumOfGamma(k=5)``). A name documented in several places
  goes to the framework-neutral entry (``TorchFunctionProblem`` among the problems), else
  to PyTorch's (``FenchelYoungLoss``, as the tutorials use it); ``jax.FenchelYoungLoss``
  or ``tensorflow.IMLELayer`` name the others.

A span ``~a.b.C`` (a docstring's shortened cross-reference, reST's ``:class:`~a.b.C```)
shows as ``C``, linked to what ``a.b.C`` names.

Code blocks, headings, existing links and the API signatures are left alone.
"""

from __future__ import annotations

import re

from mkdocs.plugins import event_priority

_API_ID = re.compile(r'\bid="(imle_solvers(?:\.\w+)*)"')
_SKIP = re.compile(
    r"<pre\b.*?</pre>|<a\b.*?</a>|<autoref\b.*?</autoref>|<h[1-6]\b.*?</h[1-6]>|<title>.*?</title>", re.DOTALL
)
_CODE = re.compile(r"<code>([^<>]+)</code>")
_SHORTENED = re.compile(r"^~\.?(?P<path>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)$")
_SPAN = re.compile(r"^(?P<prefix>ims\.|imle_solvers\.)?(?P<path>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)(?:\(.*\))?$", re.DOTALL)


class ApiIndex:
    """The identifiers of the API pages, looked up by what a page writes."""

    def __init__(self, identifiers: set[str]) -> None:
        self.identifiers = identifiers
        self.by_suffix: dict[str, set[str]] = {}
        for identifier in identifiers:
            parts = identifier.split(".")
            for i in range(1, len(parts)):
                self.by_suffix.setdefault(".".join(parts[i:]), set()).add(identifier)

    def resolve(self, text: str) -> str | None:
        """The identifier ``text`` names, or None (nothing, or more than one thing)."""
        m = _SPAN.match(text.strip())
        if m is None:
            return None
        path = m["path"]
        if "." not in path and not path[0].isupper() and not m["prefix"]:
            # a bare lower-case word (`torch`, `cache`, `data`) is an extra, an option or a
            # variable as often as a module or a function
            return None
        if f"imle_solvers.{path}" in self.identifiers:
            return f"imle_solvers.{path}"
        if path in self.identifiers:
            return path
        ranked = sorted((_framework_rank(i), i) for i in self.by_suffix.get(path, ()))
        if not ranked or (len(ranked) > 1 and ranked[0][0] == ranked[1][0]):
            return None
        return ranked[0][1]


def _framework_rank(identifier: str) -> int:
    """0: no framework's binding; 1: PyTorch's; 2: JAX's or Keras'."""
    parts = identifier.split(".")
    return 1 if "torch" in parts else 2 if {"jax", "tensorflow"} & set(parts) else 0


def link_code_spans(html: str, index: ApiIndex) -> str:
    """``html`` with each inline ``<code>`` naming an API object wrapped in an autoref."""

    def wrap(m: re.Match) -> str:
        shortened = _SHORTENED.match(m[1])
        if shortened is None:
            identifier, code = index.resolve(m[1]), m[0]
        else:  # the path, else (documented where it is re-exported) the name it ends in
            name = shortened["path"].rsplit(".", 1)[-1]
            identifier, code = index.resolve(shortened["path"]) or index.resolve(name), f"<code>{name}</code>"
        return f'<autoref identifier="{identifier}" optional>{code}</autoref>' if identifier else code

    pieces, last = [], 0
    for skipped in _SKIP.finditer(html):
        pieces.append(_CODE.sub(wrap, html[last:skipped.start()]))
        pieces.append(skipped[0])
        last = skipped.end()
    pieces.append(_CODE.sub(wrap, html[last:]))
    return "".join(pieces)


@event_priority(-10)  # after every page is rendered, before autorefs (-50) resolves
def on_env(env, config, files):
    pages = [f.page for f in files.documentation_pages() if f.page is not None and f.page.content]
    identifiers = {i for p in pages if p.file.src_uri.startswith("api/") for i in _API_ID.findall(p.content)}
    index = ApiIndex(identifiers)
    for page in pages:
        page.content = link_code_spans(page.content, index)
    return env
