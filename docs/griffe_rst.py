"""A griffe extension for the documentation build (mkdocs.yml loads it; npseq does not).

npseq's numpydoc docstrings are written for ``help()`` and use a little reStructuredText:
roles such as ``:class:`~npseq.LSTM``` and literal blocks introduced by ``::``. The API
pages are Markdown, so before mkdocstrings renders a docstring this turns a role into
inline code (``~`` keeps the last name only, as Sphinx shows it) and ``text::`` into
``text:`` (the indented block that follows is then a Markdown code block).
"""
import re

import griffe

ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|obj|exc|const):`(~?)([^`]+)`")


def rst_to_markdown(text: str) -> str:
    text = ROLE.sub(lambda m: "`" + (m.group(2).rsplit(".", 1)[-1] if m.group(1)
                                     else m.group(2)) + "`", text)
    text = re.sub(r"(?m)(\S)::$", r"\1:", text)  # "as follows::" -> "as follows:"
    return re.sub(r"(?m)^[ \t]*::$", "", text)  # a "::" on a line of its own


class RstToMarkdown(griffe.Extension):
    def on_object(self, *, obj: griffe.Object, **kwargs: object) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rst_to_markdown(obj.docstring.value)
