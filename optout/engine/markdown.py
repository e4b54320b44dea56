"""Markdown that names things from the data (file, dataset and column names, error texts):
as text it carries no HTML, table breaks or line breaks; as code it cannot close its span."""

from __future__ import annotations

import html

from optout.model.redaction import printable


def text(value: object) -> str:
    """Plain text in Markdown (also inside a table cell)."""
    flat = " ".join(printable(str(value)).split())
    # `_` inside words makes no emphasis in CommonMark: names keep their underscores
    return html.escape(flat, quote=False).replace("|", "\\|").replace("*", "\\*") \
        .replace("[", "\\[").replace("]", "\\]").replace("`", "\\`")


def code(value: object) -> str:
    """A code span (escaped as text too: not every renderer leaves HTML in one alone)."""
    flat = " ".join(printable(str(value)).split()).replace("`", "'").replace("|", "\\|")
    flat = html.escape(flat, quote=False)
    return f"`{flat}`"
