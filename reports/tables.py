"""Tables: one small model (:class:`Table`), best-value marking, and Markdown/LaTeX/CSV/HTML output.

A table is rows × columns of :class:`Cell` statistics. Every column knows its unit (shown in the
header), its direction (``higher_is_better``; ↑/↓ in the header) and whether it holds *reported*
reference values (never marked, visually set apart). The best measured mean is marked in bold:
down each column (within groups of rows when ``Table.best_within`` names a row label, e.g. one
dataset), or across the columns of a group in each row (``Table.best_across_group``, e.g. the
models at one episode length in Table 2). Exact ties are all marked, unless every entry ties.
"""

from __future__ import annotations

import html
import io
import math
from dataclasses import dataclass, field

import pandas as pd

MISSING, FAILED, NOT_APPLICABLE = "—", "failed", "n/a"


@dataclass
class Cell:
    """Statistics of one table entry; ``text`` replaces the number (missing, failed, n/a)."""

    mean: float = math.nan
    std: float = math.nan
    low: float = math.nan
    high: float = math.nan
    n: int = 0
    text: str = ""
    approx: bool = False
    best: bool = False
    unranked: bool = False  # shown but never marked best (e.g. a number that is not a valid bound)

    @property
    def has_value(self) -> bool:
        return not self.text and math.isfinite(self.mean)


@dataclass
class Column:
    key: str
    header: str  # e.g. "NELBO-cond"
    unit: str = ""
    higher_is_better: bool | None = None  # None: no direction, never marked
    reference: bool = False  # reported values from the papers (never marked best)
    group: str = ""  # a header spanning several columns (a dataset, an episode length)

    def label(self, arrows: bool = True) -> str:
        """Header text with direction arrow and unit: ``NELBO-cond ↓ [nats/image]``."""
        arrow = "" if self.higher_is_better is None or not arrows else (" ↑" if self.higher_is_better else " ↓")
        unit = f" [{self.unit}]" if self.unit else ""
        return f"{self.header}{arrow}{unit}"

    def flat_label(self, arrows: bool = True) -> str:
        return f"{self.group}: {self.label(arrows)}" if self.group else self.label(arrows)


@dataclass
class Table:
    name: str  # file stem under tables/
    title: str
    index: list[str]  # names of the row-label columns
    columns: list[Column] = field(default_factory=list)
    rows: list[tuple[str, ...]] = field(default_factory=list)
    cells: dict[tuple[tuple[str, ...], str], Cell] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    show_ci: bool = True
    show_n: bool = True  # a trailing "n" column: seeds behind the row's numbers
    best_within: str | None = None  # compare down a column only among rows sharing this label
    best_across_group: bool = False  # compare across the measured columns of one group, per row

    def cell(self, row: tuple[str, ...], key: str) -> Cell:
        return self.cells.get((row, key)) or Cell(text=MISSING)

    def row_n(self, row: tuple[str, ...]) -> int:
        return max((self.cell(row, c.key).n for c in self.columns if not c.reference), default=0)

    @property
    def empty(self) -> bool:
        return not self.rows or not self.columns


def listing_table(name: str, title: str, index: list[str], columns: list[tuple[str, str, str]]) -> Table:
    """A table of computed values with no seed count and no CI columns: ``columns`` are
    (key, header, unit) without a direction (nothing marked best)."""
    table = Table(name=name, title=title, index=index, show_n=False, show_ci=False)
    table.columns = [Column(key, header, unit, None) for key, header, unit in columns]
    return table


def drop_empty_reference_columns(table: Table) -> Table:
    """Remove reported columns with no value in any row (e.g. a dataset the papers did not report)."""
    table.columns = [
        c for c in table.columns if not c.reference or any(table.cell(row, c.key).has_value for row in table.rows)
    ]
    return table


# ---------------------------------------------------------------------------- best marking
def mark_best(table: Table) -> Table:
    """Set ``Cell.best`` on the best measured means (ties included); reference columns never."""
    for cell in table.cells.values():
        cell.best = False
    measured = [c for c in table.columns if not c.reference and c.higher_is_better is not None]
    if table.best_across_group:
        for row in table.rows:
            for group in dict.fromkeys(c.group for c in measured):
                _mark([table.cells.get((row, c.key)) for c in measured if c.group == group], measured[0])
        return table
    position = table.index.index(table.best_within) if table.best_within else None
    for column in measured:
        buckets: dict[str, list[tuple[str, ...]]] = {}
        for row in table.rows:
            buckets.setdefault(row[position] if position is not None else "", []).append(row)
        for rows in buckets.values():
            _mark([table.cells.get((row, column.key)) for row in rows], column)
    return table


def _mark(cells: list[Cell | None], column: Column) -> None:
    values = [c for c in cells if c is not None and c.has_value and not c.unranked]
    if len(values) < 2 or len({c.mean for c in values}) == 1:
        return  # a single entry, or all entries equal: nothing is "best"
    best = max(c.mean for c in values) if column.higher_is_better else min(c.mean for c in values)
    for cell in values:
        cell.best = bool(cell.mean == best)


# ---------------------------------------------------------------------------- number formatting
def decimals_for(values: list[float], unit: str = "") -> int:
    """Decimals for a column: 1 for percentages; else 3 below 1, 2 below 1000, else 1 (paper-like precision)."""
    if unit.startswith("%"):
        return 1
    finite = [abs(v) for v in values if math.isfinite(v)]
    largest = max(finite, default=0.0)
    return 3 if largest < 1 else 2 if largest < 1000 else 1


def format_cell(cell: Cell, decimals: int, reference: bool = False, show_ci: bool = True, row_n: int = 0) -> str:
    """``31.48 ± 0.12 [31.2, 31.7]`` (std over seeds, 95 % CI), ``n/a``, ``—``, reported ``≈4.7``."""
    if cell.text:
        return cell.text
    if not math.isfinite(cell.mean):
        return MISSING
    if reference:
        return ("≈" if cell.approx else "") + f"{cell.mean:g}"
    text = f"{cell.mean:.{decimals}f}"
    if math.isfinite(cell.std):
        text += f" ± {cell.std:.{decimals}f}"
    if show_ci and math.isfinite(cell.low) and math.isfinite(cell.high):
        text += f" [{cell.low:.{decimals}f}, {cell.high:.{decimals}f}]"
    if row_n and cell.n and cell.n != row_n:
        text += f" (n={cell.n})"
    return text


def _formatted(table: Table) -> dict[str, list[str]]:
    """Column key -> display strings per row (no markup)."""
    out = {}
    for column in table.columns:
        cells = [table.cell(row, column.key) for row in table.rows]
        decimals = decimals_for([c.mean for c in cells], column.unit)
        out[column.key] = [
            format_cell(c, decimals, column.reference, table.show_ci, table.row_n(row) if table.show_n else 0)
            for c, row in zip(cells, table.rows)
        ]
    return out


def legend(table: Table) -> str:
    """The caption line explaining what the table shows: marks, spreads, n, placeholders, reference columns."""
    measured = [c for c in table.columns if not c.reference]
    cells = [table.cell(row, c.key) for row in table.rows for c in measured]
    parts = []
    if any(c.higher_is_better is not None for c in measured):
        parts.append("bold: best measured mean (↓ lower / ↑ higher is better)")
    if any(math.isfinite(c.std) for c in cells):
        parts.append("± std over seeds")
    if table.show_ci and any(math.isfinite(c.low) for c in cells):
        parts.append("[95 % CI] (Student t)")
    if table.show_n and measured:
        parts.append("n: seeds")
    texts = {table.cell(row, c.key).text for row in table.rows for c in table.columns}
    meanings = {
        MISSING: "no result" if measured else "not reported",
        NOT_APPLICABLE: "not applicable",
        FAILED: "the run failed",
    }
    parts += [f"{text}: {meanings[text]}" for text in (MISSING, NOT_APPLICABLE, FAILED) if text in texts]
    if measured and len(measured) < len(table.columns):
        parts.append("shaded 'reported' columns: the papers' numbers, reference only — not measured here")
    elif not measured and table.columns:
        parts.append("reported values as printed in the source; reference only — not measured here")
    return "; ".join(parts) + "." if parts else ""


# ---------------------------------------------------------------------------- Markdown
def to_markdown(table: Table) -> str:
    texts = _formatted(table)
    headers = [*table.index, *(_md_escape(c.flat_label()) for c in table.columns)]
    if table.show_n:
        headers.append("n")
    lines = [f"**{table.title}**", "", "| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for i, row in enumerate(table.rows):
        cells = [_md_escape(v) for v in row]
        for column in table.columns:
            text = _md_escape(texts[column.key][i])
            cells.append(f"**{text}**" if table.cell(row, column.key).best else text)
        if table.show_n:
            cells.append(str(table.row_n(row)))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", legend(table), *(f"- {note}" for note in table.notes)]
    return "\n".join(lines) + "\n"


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|")


def frame_markdown(frame: pd.DataFrame, float_format: str = "{:.3f}") -> str:
    """A data frame as a GitHub-flavoured Markdown table (no extra dependency)."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            return "" if pd.isna(value) else float_format.format(value)
        return "" if value is None else _md_escape(str(value))

    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body]) + "\n"


# ---------------------------------------------------------------------------- LaTeX
LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "↓": r"$\downarrow$",
    "↑": r"$\uparrow$",
    "×": r"$\times$",
    "≈": r"$\approx$",
    "°": r"$^\circ$",
    "—": "---",
    "–": "--",
    "−": "-",
    "·": r"$\cdot$",
    "‖": r"$\|$",
    "≤": r"$\leq$",
    "≥": r"$\geq$",
    "→": r"$\rightarrow$",
    "α": r"$\alpha$",
    "σ": r"$\sigma$",
    "§": r"\S{}",
}


def latex_escape(text: str) -> str:
    """Escape LaTeX specials and map the few non-ASCII symbols used here; drop any other non-ASCII."""
    out = []
    for char in str(text):
        if char in LATEX_SPECIAL:
            out.append(LATEX_SPECIAL[char])
        elif ord(char) < 128:
            out.append(char)
        else:
            out.append("?")
    return "".join(out)


def to_latex(table: Table) -> str:
    """A booktabs ``table`` environment (needs ``\\usepackage{booktabs,graphicx}``), ASCII only."""
    texts = _formatted(table)
    spec = "l" * len(table.index) + "".join("r" for _ in table.columns) + ("r" if table.show_n else "")
    buffer = io.StringIO()
    write = buffer.write
    write("% memorybench report table; requires \\usepackage{booktabs,graphicx}\n")
    write("\\begin{table}[t]\n\\centering\n")
    write(f"\\caption{{{latex_escape(table.title)}}}\n\\label{{tab:{latex_escape(table.name).replace(chr(92), '')}}}\n")
    write(
        f"\\resizebox{{\\ifdim\\width>\\textwidth\\textwidth\\else\\width\\fi}}{{!}}{{%\n\\begin{{tabular}}{{{spec}}}\n"
    )
    write("\\toprule\n")
    groups = [c.group for c in table.columns]
    if any(groups):
        spans, rules, start = [], [], len(table.index) + 1
        for group in dict.fromkeys(groups):
            width = groups.count(group)
            spans.append(f"\\multicolumn{{{width}}}{{c}}{{{latex_escape(group)}}}")
            if group:
                rules.append(f"\\cmidrule(lr){{{start}-{start + width - 1}}}")
            start += width
        write(" & ".join([""] * len(table.index) + spans + ([""] if table.show_n else [])) + " \\\\\n")
        write(" ".join(rules) + "\n")
    headers = [latex_escape(name) for name in table.index]
    for column in table.columns:
        label = latex_escape(column.label())
        headers.append(f"\\textit{{{label}}}" if column.reference else label)
    if table.show_n:
        headers.append("$n$")
    write(" & ".join(headers) + " \\\\\n\\midrule\n")
    for i, row in enumerate(table.rows):
        cells = [latex_escape(v) for v in row]
        for column in table.columns:
            text = latex_escape(texts[column.key][i])
            cells.append(f"\\textbf{{{text}}}" if table.cell(row, column.key).best else text)
        if table.show_n:
            cells.append(str(table.row_n(row)))
        write(" & ".join(cells) + " \\\\\n")
    write("\\bottomrule\n\\end{tabular}}\n")
    notes = " ".join([legend(table), *table.notes])
    write(f"\\par\\smallskip\\footnotesize {latex_escape(notes)}\n\\end{{table}}\n")
    return buffer.getvalue()


# ---------------------------------------------------------------------------- CSV
def to_frame(table: Table) -> pd.DataFrame:
    """Numbers, not strings: per column its mean (or reported value), and for measured columns
    ``| sd``, ``| ci95_low``, ``| ci95_high``, ``| n``, ``| best`` (and ``| note`` for text cells)."""
    records = []
    for row in table.rows:
        record: dict[str, object] = dict(zip(table.index, row))
        for column in table.columns:
            cell, label = table.cell(row, column.key), column.flat_label(arrows=False)
            record[label] = cell.mean if cell.has_value else math.nan
            if column.reference:
                continue
            record.update(
                {
                    f"{label} | sd": cell.std,
                    f"{label} | ci95_low": cell.low,
                    f"{label} | ci95_high": cell.high,
                    f"{label} | n": cell.n,
                    f"{label} | best": cell.best,
                }
            )
            if any(table.cell(r, column.key).text for r in table.rows):
                record[f"{label} | note"] = cell.text
        records.append(record)
    return pd.DataFrame(records)


def to_csv(table: Table) -> str:
    return to_frame(table).to_csv(index=False)


# ---------------------------------------------------------------------------- HTML
def to_html(table: Table) -> str:
    """An HTML ``<table>``: grouped headers, bold best cells, shaded reference columns, CI in tooltips."""
    texts = _formatted(table)
    esc = html.escape
    out = [f'<table class="results" id="table-{esc(table.name)}">']
    out.append(f"<caption>{esc(table.title)}</caption><thead>")
    groups = [c.group for c in table.columns]
    if any(groups):
        out.append("<tr>" + "".join("<th></th>" for _ in table.index))
        for group in dict.fromkeys(groups):
            out.append(f'<th colspan="{groups.count(group)}" class="group">{esc(group)}</th>')
        out.append("<th></th>" * int(table.show_n) + "</tr>")
    out.append("<tr>" + "".join(f"<th>{esc(name)}</th>" for name in table.index))
    for column in table.columns:
        css = ' class="ref"' if column.reference else ""
        out.append(f"<th{css}>{esc(column.label())}</th>")
    out.append("<th>n</th>" * int(table.show_n) + "</tr></thead><tbody>")
    for i, row in enumerate(table.rows):
        out.append("<tr>" + "".join(f"<th>{esc(str(v))}</th>" for v in row))
        for column in table.columns:
            cell = table.cell(row, column.key)
            classes = [
                name for name, on in (("ref", column.reference), ("best", cell.best), ("na", bool(cell.text))) if on
            ]
            tip = ""
            if math.isfinite(cell.low) and math.isfinite(cell.high):
                tip = f' title="95% CI [{cell.low:.4g}, {cell.high:.4g}], n={cell.n}"'
            css = f' class="{" ".join(classes)}"' if classes else ""
            out.append(f"<td{css}{tip}>{esc(texts[column.key][i])}</td>")
        out.append(f"<td>{table.row_n(row)}</td>" * int(table.show_n) + "</tr>")
    out.append("</tbody></table>")
    out.append(f'<p class="legend">{esc(legend(table))}</p>')
    if table.notes:
        out.append('<ul class="notes">' + "".join(f"<li>{esc(n)}</li>" for n in table.notes) + "</ul>")
    return "\n".join(out)


RENDERERS = {"md": to_markdown, "tex": to_latex, "csv": to_csv}
