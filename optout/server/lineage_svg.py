"""The lineage picture: datasets as boxes in columns by depth (sources left, what derives from
them to the right), derived edges as arrows, datasets holding PII highlighted. Plain SVG,
built as text (names escaped); no script."""

from __future__ import annotations

from html import escape

BOX_W, BOX_H, GAP_X, GAP_Y, PAD = 180, 34, 70, 16, 12


def _depths(names: list[str], edges: list[tuple[str, str]]) -> dict[str, int]:
    """Each dataset's column: the longest chain of upstream datasets behind it."""
    depth = dict.fromkeys(names, 0)
    for _ in range(len(names)):
        changed = False
        for up, down in edges:
            if up in depth and down in depth and depth[down] < depth[up] + 1:
                depth[down] = depth[up] + 1
                changed = True
        if not changed:
            break
    return depth


def lineage_svg(datasets: list[tuple[str, bool]], edges: list[tuple[str, str]]) -> str:
    """`datasets`: (name, holds PII); `edges`: (upstream, downstream) by name."""
    names = [n for n, _ in datasets]
    pii = {n for n, p in datasets if p}
    depth = _depths(names, edges)
    columns: dict[int, list[str]] = {}
    for name in sorted(names):
        columns.setdefault(depth[name], []).append(name)
    where = {}
    for d, members in columns.items():
        for i, name in enumerate(members):
            where[name] = (PAD + d * (BOX_W + GAP_X), PAD + i * (BOX_H + GAP_Y))
    width = PAD * 2 + (max(columns, default=0) + 1) * (BOX_W + GAP_X) - GAP_X
    height = PAD * 2 + max((len(m) for m in columns.values()), default=1) * (BOX_H + GAP_Y)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-labelledby="lineage-title">',
             '<title id="lineage-title">Lineage: datasets and what derives from them</title>',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" '
             'markerWidth="8" markerHeight="8" orient="auto-start-reverse">'
             '<path d="M 0 0 L 10 5 L 0 10 z" class="arrowhead"/></marker></defs>']
    for up, down in edges:
        if up not in where or down not in where:
            continue
        (x1, y1), (x2, y2) = where[up], where[down]
        parts.append(f'<line class="edge" x1="{x1 + BOX_W}" y1="{y1 + BOX_H // 2}" '
                     f'x2="{x2}" y2="{y2 + BOX_H // 2}" marker-end="url(#arrow)"/>')
    for name, (x, y) in where.items():
        kind = "dataset pii" if name in pii else "dataset"
        label = escape(name if len(name) <= 24 else name[:23] + "…")
        parts.append(f'<g class="{kind}"><rect x="{x}" y="{y}" width="{BOX_W}" '
                     f'height="{BOX_H}" rx="4"/><text x="{x + 10}" y="{y + 22}">{label}'
                     f'{" (PII)" if name in pii else ""}</text></g>')
    parts.append("</svg>")
    return "".join(parts)
