"""Render report sections to Markdown and to one self-contained HTML page (PNGs embedded as base64)."""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_ROWS = 60


@dataclass
class Section:
    """One part of the report: a title, a paragraph, optional tables and figures. A table is (caption, DataFrame) or
    (caption, DataFrame, note), the note printed under it. `collapsed`: the tables are folded (HTML <details>) below
    the figures, for long reference tables."""

    title: str
    text: str = ""
    tables: list[tuple[Any, ...]] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    collapsed: bool = False


def fmt(v: Any) -> str:
    """Compact cell text: 4 significant digits for floats, blank for NaN/None."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _frame(table: Any, max_rows: int | None = MAX_ROWS) -> Any:
    t = table.reset_index() if table.index.name or any(table.index.names) else table
    return t if max_rows is None else t.head(max_rows)


def md_table(table: Any, max_rows: int | None = MAX_ROWS) -> str:
    """A GitHub-style Markdown table (the first `max_rows` rows, with a note when cut; None: every row)."""
    t = _frame(table, max_rows)
    head = "| " + " | ".join(map(str, t.columns)) + " |"
    sep = "|" + "---|" * len(t.columns)
    body = ["| " + " | ".join(fmt(v).replace("|", "/") for v in row) + " |" for row in t.itertuples(index=False)]
    cut = max_rows is not None and len(table) > max_rows
    more = [f"\n_{len(table) - max_rows} more rows in the CSV._"] if cut else []  # type: ignore[operator]
    return "\n".join([head, sep, *body, *more])


def _rows(table: Any) -> str:
    return f"{len(table)} row{'s' if len(table) != 1 else ''}"


def _md_tables(s: Section) -> list[str]:
    out = []
    for caption, table, *note in s.tables:
        body = md_table(table) if len(table) else "_(empty)_"
        body += "".join(f"\n\n_{n}_" for n in note if n)
        if s.collapsed:  # GitHub and most Markdown viewers fold <details>; the table inside stays Markdown
            out += [f"<details><summary>{html.escape(caption, quote=False)} ({_rows(table)})</summary>", "", body, "",
                    "</details>", ""]
        else:
            out += [f"**{caption}**", "", body, ""]
    return out


def to_markdown(title: str, sections: list[Section]) -> str:
    """The whole report as Markdown; figures are linked by file name (they sit beside report.md); the tables of a
    collapsed section come after its figures, folded in <details>."""
    out = [f"# {title}", ""]
    for s in sections:
        out += [f"## {s.title}", ""]
        if s.text:
            out += [s.text, ""]
        figs = [f"![{p.stem}]({p.name})" for p in s.figures] + ([""] if s.figures else [])
        out += figs + _md_tables(s) if s.collapsed else _md_tables(s) + figs
    return "\n".join(out)


def _html_table(table: Any) -> str:
    t = _frame(table)
    cells = "".join(f"<th>{html.escape(str(c))}</th>" for c in t.columns)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(fmt(v))}</td>" for v in r) + "</tr>"
                   for r in t.itertuples(index=False))
    more = f"<p class='note'>{len(table) - MAX_ROWS} more rows in the CSV.</p>" if len(table) > MAX_ROWS else ""
    return f"<div class='scroll'><table><thead><tr>{cells}</tr></thead><tbody>{rows}</tbody></table></div>{more}"


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"<figure><img alt='{html.escape(path.stem)}' src='data:image/png;base64,{data}'></figure>"


STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
.scroll{overflow-x:auto;max-width:100%;margin:.5em 0 1.2em}
table{border-collapse:collapse;font-size:12px}th,td{border:1px solid #ccc;padding:2px 6px;
text-align:right;white-space:nowrap}th{background:#f2f2f2}
td:first-child,th:first-child{text-align:left}img{max-width:100%;height:auto}figure{margin:.5em 0}
details{margin:.3em 0}summary{cursor:pointer;font-weight:600;font-size:14px;padding:.2em 0}
.note{color:#666;font-size:12px}h2{border-bottom:1px solid #ddd;padding-bottom:.2em}"""


def to_html(title: str, sections: list[Section]) -> str:
    """The whole report as one HTML page with inline CSS and base64 images (no external files)."""
    parts = [(f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>")]
    for s in sections:
        parts.append(f"<h2>{html.escape(s.title)}</h2>")
        if s.text:
            parts.append(f"<p>{html.escape(s.text)}</p>")
        figs = [_img(p) for p in s.figures]
        parts += figs + _html_tables(s) if s.collapsed else _html_tables(s) + figs
    parts.append("</body></html>")
    return "\n".join(parts)


def _html_tables(s: Section) -> list[str]:
    out = []
    for caption, table, *note in s.tables:
        body = _html_table(table) if len(table) else "<p class='note'>(empty)</p>"
        body += "".join(f"<p class='note'>{html.escape(n)}</p>" for n in note if n)
        if s.collapsed:
            out.append(f"<details><summary>{html.escape(caption)} ({_rows(table)})</summary>{body}</details>")
        else:
            out += [f"<h3>{html.escape(caption)}</h3>", body]
    return out
