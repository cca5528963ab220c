// MathJax 3 settings for pymdownx.arithmatex (generic mode): typeset only the spans and
// divs that arithmatex marks, so a "$" or "\(" anywhere else on a page stays text.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex"
  }
};
