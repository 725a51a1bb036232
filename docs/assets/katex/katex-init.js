// Typeset the math that pymdownx.arithmatex (generic: true) wrapped in .arithmatex elements,
// as \(...\) inline and \[...\] display. Only those elements are scanned, so a "$" elsewhere
// in prose or code is left alone. Material's "Math" recipe, on the site's own KaTeX copy.
document$.subscribe(({ body }) => {
  for (const element of body.querySelectorAll(".arithmatex")) {
    renderMathInElement(element, {
      delimiters: [
        { left: "\\(", right: "\\)", display: false },
        { left: "\\[", right: "\\]", display: true },
      ],
      throwOnError: false,
    });
  }
});
