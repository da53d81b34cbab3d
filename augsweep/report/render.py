"""Report rendering: sections of paragraphs, tables and images to Markdown and to one self-contained HTML
file, with fixed number formats so that a regenerated report is byte-identical."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..plots import PAGE_PX


def _fmt(v, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "–"
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        if v != 0 and abs(v) < 10 ** -digits:
            return f"{v:.1e}"
        return f"{v:.{digits}f}"
    return str(v)


def display(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.apply(lambda col: col.map(_fmt)).astype(str)


def constant_columns(shown: pd.DataFrame) -> list[str]:
    """Columns of a displayed table that read the same in every row (two rows or more), except the first, which
    names the rows."""
    if len(shown) < 2:
        return []
    return [c for c in shown.columns[1:] if shown[c].nunique(dropna=False) == 1]


def table_parts(frame: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """A table as the report shows it: displayed, its constant columns taken out, and the sentence that states
    them once (`All rows: ci_method = …; n_seeds = 4.`; "" when none). The CSV files keep every column."""
    shown = display(frame)
    constant = constant_columns(shown)
    said = [f"{c} = {shown[c].iloc[0]}" for c in constant if shown[c].iloc[0] != ""]
    return shown.drop(columns=constant), f"All rows: {'; '.join(said)}." if said else ""


@dataclass
class Section:
    """A heading with paragraphs, tables and images, rendered to Markdown and HTML alike: a table without its
    constant columns (`table_parts`), a section without blocks not at all."""

    title: str
    blocks: list = field(default_factory=list)  # str (paragraph) | DataFrame | ("image", path, alt) | ("code", text)
    # | ("images", [(path, alt), ...]): figures side by side


@dataclass(frozen=True)
class Words:
    """One part of the report in words: its sections in reading order, its answer (the paragraphs the first
    screen opens with) and its `Next:` lines, each as the sections say them."""

    sections: list
    answer: tuple[str, ...] = ()
    next_steps: tuple[str, ...] = ()


def to_markdown(title: str, sections: list[Section]) -> str:
    out = [f"# {title}", ""]
    for s in sections:
        if not s.blocks:  # nothing to show: no heading either
            continue
        out += [f"## {s.title}", ""]
        for b in s.blocks:
            if isinstance(b, pd.DataFrame):
                shown, constants = table_parts(b)
                out += [shown.to_markdown(index=False), ""] + ([constants, ""] if constants else [])
            elif isinstance(b, tuple) and b[0] == "image":
                out += [f"![{b[2]}]({Path(b[1]).name})", ""]
            elif isinstance(b, tuple) and b[0] == "images":
                out += [" ".join(f"![{alt}]({Path(p).name})" for p, alt in b[1]), ""]
            elif isinstance(b, tuple) and b[0] == "code":
                out += ["```", b[1].rstrip(), "```", ""]
            else:
                out += [str(b), ""]
    return "\n".join(out).rstrip() + "\n"


# The column is as wide as `plots` sizes its figures for: each shows at its natural size, its text as drawn.
CSS = f"""body{{font-family:system-ui,sans-serif;max-width:{PAGE_PX}px;margin:2em auto;padding:0 1em;color:#222}}
table{{border-collapse:collapse;margin:0.5em 0 1em}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}
th{{background:#f3f3f3}}td:first-child{{text-align:left}}div.table{{overflow-x:auto}}img{{max-width:100%}}
pre{{background:#f6f6f6;padding:0.8em;overflow:auto}}.helps{{color:#1a7f37;font-weight:600}}
.hurts{{color:#cf222e;font-weight:600}}"""


def inline_md(text: str) -> str:
    """Escape, then render the two inline marks the report uses: **bold** and `code`."""
    import re

    t = html.escape(text)
    t = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", t)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", t)


def to_html(title: str, sections: list[Section]) -> str:
    """One self-contained HTML file (images embedded as base64 PNG)."""
    out = ["<!DOCTYPE html>", "<html><head><meta charset='utf-8'>", f"<title>{html.escape(title)}</title>",
           f"<style>{CSS}</style></head><body>", f"<h1>{html.escape(title)}</h1>"]
    for s in sections:
        if not s.blocks:
            continue
        out.append(f"<h2>{html.escape(s.title)}</h2>")
        for b in s.blocks:
            if isinstance(b, pd.DataFrame):
                shown, constants = table_parts(b)
                table = shown.to_html(index=False, escape=True, border=0)
                for v in ("helps", "hurts"):
                    table = table.replace(f"<td>{v}</td>", f"<td class='{v}'>{v}</td>")
                out.append(f"<div class='table'>{table}</div>")
                if constants:
                    out.append(f"<p>{html.escape(constants)}</p>")
            elif isinstance(b, tuple) and b[0] == "image":
                data = base64.b64encode(Path(b[1]).read_bytes()).decode()
                out.append(f"<p><img alt='{html.escape(b[2])}' src='data:image/png;base64,{data}'></p>")
            elif isinstance(b, tuple) and b[0] == "images":  # a row of figures side by side (the first screen)
                cells = "".join(f"<img style='max-width:{100 // len(b[1])}%;height:auto' alt='{html.escape(alt)}' "
                                f"src='data:image/png;base64,{base64.b64encode(Path(p).read_bytes()).decode()}'>"
                                for p, alt in b[1])
                out.append(f"<p style='display:flex;gap:0.5em;align-items:flex-start'>{cells}</p>")
            elif isinstance(b, tuple) and b[0] == "code":
                out.append(f"<pre>{html.escape(b[1])}</pre>")
            else:
                out.append(f"<p>{inline_md(str(b))}</p>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def verdict_sentence(effects: pd.DataFrame) -> str:
    """`**helps**: a, b; **hurts**: c.` from rows with `augmentation` and `verdict` columns."""
    parts = []
    for verdict in ("helps", "hurts", "negligible", "undecided"):
        names = effects.loc[effects["verdict"] == verdict, "augmentation"].tolist()
        if names:
            parts.append(f"**{verdict}**: {', '.join(names)}")
    return "; ".join(parts) + "." if parts else "no augmentation could be compared."
