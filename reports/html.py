"""The report documents: one self-contained HTML file and a Markdown twin.

The HTML embeds every figure as a base64 PNG (the file can be mailed or archived alone) and
links the PDF versions relatively (``figures/*.pdf``); its CSS and its one small script are
inline (no network, no library), so it renders the same offline in any browser. The script makes
every table sortable (click a header: numbers sort as numbers — a cell's leading number, so
``108.47 ± 0.26`` sorts by 108.47 —, ``—``/``n/a``/empty cells last; click again to reverse)
and filterable (a box above each table keeps the rows containing every word typed). Without
JavaScript the tables are plain tables. A figure index lists every figure with a link to it.
The Markdown report links ``figures/*.png``.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from memorybench.reports.figures import Figure
from memorybench.reports.tables import Table, frame_markdown, to_html, to_markdown

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1200px;padding:1em 2em;
color:#222;line-height:1.4}
h1{margin-bottom:.2em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
table.meta td,table.meta th{text-align:left;padding:2px 12px 2px 0;vertical-align:top}
table.results,table.runs{border-collapse:collapse;margin:1em 0 .3em;font-size:.9em;display:block;overflow-x:auto}
table.results caption{text-align:left;font-weight:600;padding-bottom:.3em}
table.results th,table.results td,table.runs th,table.runs td{border-bottom:1px solid #e3e3e3;padding:3px 9px;
white-space:nowrap}
table.results td{text-align:right;font-variant-numeric:tabular-nums}
table.results tbody th{text-align:left;font-weight:600}
table.results th.group{text-align:center;border-bottom:1px solid #999}
td.best{font-weight:700}td.na{color:#888;text-align:center}
th.ref,td.ref{background:#f4f1e8;font-style:italic;color:#555}
p.legend,ul.notes{font-size:.8em;color:#555;margin:.2em 0}
figure{display:inline-block;margin:1em 1em 1em 0;vertical-align:top;max-width:100%}
figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.85em;color:#444;max-width:60em}
.status-failed{color:#b00020}.status-pending,.status-running{color:#a66f00}.status-not_applicable{color:#666}
nav a{margin-right:1em}code{background:#f5f5f5;padding:0 3px}
th.sortable{cursor:pointer;user-select:none}th.sortable:after{content:" \\2195";color:#bbb;font-size:.8em}
th[aria-sort=ascending]:after{content:" \\25B2";color:#444}th[aria-sort=descending]:after{content:" \\25BC";color:#444}
input.table-filter{margin:.8em 0 0;padding:2px 6px;font-size:.85em;width:18em}
ol.figure-index{columns:2;font-size:.85em}
"""

# Sorting and filtering of every table (inline, no library, no network).
SCRIPT = """
(function () {
  function key(cell) {
    var text = (cell.textContent || "").trim();
    var match = text.replace(/[−–]/g, "-").replace(/,/g, "").match(/^[-+]?(\\d+\\.?\\d*|\\.\\d+)(e[-+]?\\d+)?/i);
    return {empty: text === "" || text === "—" || text === "n/a", number: match ? parseFloat(match[0]) : null, text: text};
  }
  function compare(a, b, descending) {
    if (a.empty !== b.empty) { return a.empty ? 1 : -1; }  // empty cells last in either direction
    var order = a.number !== null && b.number !== null ? a.number - b.number
      : a.text.localeCompare(b.text, undefined, {numeric: true});
    return descending ? -order : order;
  }
  function sortable(table) {
    var head = table.tHead, body = table.tBodies[0];
    if (!head || !body || !head.rows.length) { return; }
    var headers = head.rows[head.rows.length - 1].cells;
    Array.prototype.forEach.call(headers, function (th, column) {
      th.classList.add("sortable");
      th.title = "sort by this column";
      th.addEventListener("click", function () {
        var descending = th.getAttribute("aria-sort") === "ascending";
        Array.prototype.forEach.call(headers, function (other) { other.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", descending ? "descending" : "ascending");
        var rows = Array.prototype.slice.call(body.rows).filter(function (row) { return row.cells.length > column; });
        rows.sort(function (a, b) { return compare(key(a.cells[column]), key(b.cells[column]), descending); });
        rows.forEach(function (row) { body.appendChild(row); });
      });
    });
  }
  function filterable(table) {
    var body = table.tBodies[0];
    if (!body) { return; }
    var box = document.createElement("input");
    box.type = "search";
    box.className = "table-filter";
    box.placeholder = "filter rows (" + body.rows.length + ")";
    box.setAttribute("aria-label", "filter the rows of the next table");
    box.addEventListener("input", function () {
      var words = box.value.toLowerCase().split(/\\s+/).filter(Boolean);
      Array.prototype.forEach.call(body.rows, function (row) {
        var text = row.textContent.toLowerCase();
        row.hidden = !words.every(function (word) { return text.indexOf(word) >= 0; });
      });
    });
    table.parentNode.insertBefore(box, table);
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.results, table.runs"), function (table) {
    sortable(table);
    filterable(table);
  });
})();
"""


@dataclass
class ReportContent:
    title: str
    header: dict[str, str]  # what was run: suite, commit, devices, dates, counts
    paper_tables: list[Table] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    reported: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    problems: pd.DataFrame = field(default_factory=pd.DataFrame)  # missing/failed/converted runs
    superseded: pd.DataFrame = field(default_factory=pd.DataFrame)
    skipped: list[str] = field(default_factory=list)  # tables/figures that could not be made, with reasons
    files: list[str] = field(default_factory=list)  # other outputs, relative to the report


SECTIONS = [
    ("run", "What was run"),
    ("paper", "Paper-style tables"),
    ("benchmarks", "Results per benchmark"),
    ("figures", "Figures"),
    ("figure-index", "Figure index"),
    ("problems", "Missing, failed and converted runs"),
    ("reported", "Reported values (reference)"),
]


# ---------------------------------------------------------------------------- HTML
def render_html(report: ReportContent, figures_dir: Path) -> str:
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(report.title)}</title>",
        '<link rel="icon" href="data:,">',  # no favicon request (a 404 would be a console error)
        f"<style>{CSS}</style></head><body>",
        f"<h1>{esc(report.title)}</h1>",
        "<nav>" + "".join(f'<a href="#{key}">{esc(title)}</a>' for key, title in SECTIONS) + "</nav>",
        '<h2 id="run">What was run</h2><table class="meta">',
        *(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in report.header.items()),
        "</table>",
        '<h2 id="paper">Paper-style tables</h2>',
    ]
    parts += [to_html(t) for t in report.paper_tables] or ["<p>No ELBO or denoising results to tabulate.</p>"]
    parts.append('<h2 id="benchmarks">Results per benchmark</h2>')
    parts += [to_html(t) for t in report.tables] or ["<p>No results.</p>"]
    parts.append('<h2 id="figures">Figures</h2>')
    if not report.figures:
        parts.append("<p>No figures (no results with plottable files).</p>")
    else:
        parts.append(_figure_index(report.figures))
    for section in dict.fromkeys(f.section for f in report.figures):
        parts.append(f"<h3>{esc(section)}</h3>")
        for figure in (f for f in report.figures if f.section == section):
            data = base64.b64encode((figures_dir / figure.png).read_bytes()).decode("ascii")
            parts.append(
                f'<figure id="fig-{esc(figure.stem)}"><img src="data:image/png;base64,{data}" alt="{esc(figure.title)}">'
                f"<figcaption><b>{esc(figure.title)}.</b> {esc(figure.caption)} "
                f'<a href="figures/{esc(figure.pdf)}">PDF</a></figcaption></figure>'
            )
    parts.append('<h2 id="problems">Missing, failed and converted runs</h2>')
    parts.append(_problems_html(report))
    parts.append('<h2 id="reported">Reported values (reference)</h2>')
    parts.append(
        "<p>The papers' numbers as printed, for orientation only: other protocols, "
        "architectures and data pipelines; never results of this suite.</p>"
    )
    parts += [to_html(t) for t in report.reported]
    if report.files:
        parts.append(
            "<h2>Files</h2><ul>" + "".join(f'<li><a href="{esc(f)}">{esc(f)}</a></li>' for f in report.files) + "</ul>"
        )
    parts.append(f"<script>{SCRIPT}</script>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _figure_index(figures: list[Figure]) -> str:
    """A numbered list of every figure (by section), each a link to it."""
    esc = html.escape
    items = [
        f'<li><a href="#fig-{esc(figure.stem)}">{esc(figure.title or figure.stem)}</a> <small>({esc(figure.section)})</small></li>'
        for section in dict.fromkeys(f.section for f in figures)
        for figure in figures
        if figure.section == section
    ]
    return '<h3 id="figure-index">Figure index</h3><ol class="figure-index">' + "".join(items) + "</ol>"


def _problems_html(report: ReportContent) -> str:
    esc = html.escape
    out = []
    if report.problems.empty:
        out.append("<p>None: every planned run finished.</p>")
    else:
        out.append(_frame_html(report.problems, status_column="status"))
    if not report.superseded.empty:
        out.append(
            "<h3>Superseded configurations and duplicates</h3><p>Runs of an older configuration of the same "
            "(suite, model, dataset, benchmark), or a second copy of one seed; not included in the tables.</p>"
        )
        out.append(_frame_html(report.superseded, status_column="status"))
    if report.skipped:
        out.append(
            "<h3>Tables and figures not drawn</h3><ul>"
            + "".join(f"<li>{esc(s)}</li>" for s in report.skipped)
            + "</ul>"
        )
    return "\n".join(out)


def _frame_html(frame: pd.DataFrame, status_column: str | None = None) -> str:
    esc = html.escape
    rows = [
        "<table class='runs'><thead><tr>"
        + "".join(f"<th>{esc(str(c))}</th>" for c in frame.columns)
        + "</tr></thead><tbody>"
    ]
    for record in frame.itertuples(index=False):
        cells = []
        for column, value in zip(frame.columns, record):
            text = "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)
            css = f" class='status-{esc(text)}'" if column == status_column else ""
            cells.append(f"<td{css}>{esc(text)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return "\n".join(rows) + "</tbody></table>"


# ---------------------------------------------------------------------------- Markdown
def render_markdown(report: ReportContent) -> str:
    lines = [f"# {report.title}", "", "## What was run", ""]
    lines += [f"- **{k}**: {v}" for k, v in report.header.items()]
    lines += ["", "## Paper-style tables", ""]
    lines += [to_markdown(t) for t in report.paper_tables] or ["No ELBO or denoising results to tabulate.", ""]
    lines += ["## Results per benchmark", ""]
    lines += [to_markdown(t) for t in report.tables] or ["No results.", ""]
    lines += ["## Figures", ""]
    sections = list(dict.fromkeys(f.section for f in report.figures))
    ordered = [f for section in sections for f in report.figures if f.section == section]
    if ordered:  # the index: one numbered link per figure, by section
        lines += [
            *(f"{n}. [{f.title or f.stem}](#fig-{f.stem}) ({f.section})" for n, f in enumerate(ordered, 1)),
            "",
        ]
    for section in sections:
        lines += [f"### {section}", ""]
        for figure in (f for f in report.figures if f.section == section):
            lines += [
                f'<a id="fig-{figure.stem}"></a>',
                "",
                f"![{figure.title}](figures/{figure.png})",
                "",
                f"*{figure.title}.* {figure.caption} ([PDF](figures/{figure.pdf}))",
                "",
            ]
    lines += ["## Missing, failed and converted runs", ""]
    lines.append(
        frame_markdown(report.problems) if not report.problems.empty else "None: every planned run finished.\n"
    )
    if not report.superseded.empty:
        lines += [
            "### Superseded configurations and duplicates (not in the tables)",
            "",
            frame_markdown(report.superseded),
        ]
    if report.skipped:
        lines += ["### Tables and figures not drawn", "", *(f"- {s}" for s in report.skipped), ""]
    lines += [
        "## Reported values (reference)",
        "",
        "The papers' numbers as printed, for orientation only.",
        "",
    ]
    lines += [to_markdown(t) for t in report.reported]
    if report.files:
        lines += ["## Files", "", *(f"- [{f}]({f})" for f in report.files), ""]
    return "\n".join(lines)
