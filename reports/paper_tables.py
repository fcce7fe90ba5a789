"""Building the report's tables from aggregated results and the papers' reported values.

- one table per (suite, benchmark): datasets × models, headline metrics (those without tags);
- paper-style Table 1 (negative ELBO per dataset), Table 2 (denoising success rate by noise and
  T) and Table 3 (the other datasets), each with the reported values in separate "reported"
  columns; NELBO-cond and NELBO-full are always separate columns (and so are reported numbers
  of the two kinds, docs/protocol.md);
- the reported tables themselves (reference only), and the paired differences.
"""

from __future__ import annotations

import math

import pandas as pd

from memorybench.reports.reference import Reference
from memorybench.reports.tables import (
    FAILED,
    MISSING,
    NOT_APPLICABLE,
    Cell,
    Column,
    Table,
    drop_empty_reference_columns,
    mark_best,
)

METRIC_LABELS = {
    "nelbo_cond": "NELBO-cond",
    "nelbo_full": "NELBO-full",
    "nelbo_heldout": "NELBO held-out queries",
    "heldout_gap": "held-out − cond",
    "nll_is": "−ln p(X)/T (IS)",
    "success_rate": "success rate",
    "hamming_final": "final Hamming error",
    "cosine_mean": "read-out cosine",
}
ELBO, DENOISING = "elbo", "denoising"
# Table 2 cells: the denoising benchmark's success_rate tagged with noise and level (and T; without
# a T tag the value averages the episode lengths and is used only when no per-T value exists).
SUCCESS_RATE = "success_rate"


def metric_label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric)


def _stats_cell(row: pd.Series) -> Cell:
    return Cell(
        mean=float(row["mean"]),
        std=float(row["std"]),
        low=float(row["ci95_low"]),
        high=float(row["ci95_high"]),
        n=int(row["n"]),
    )


def state_text(runs: pd.DataFrame) -> str:
    """What to print where a number is absent, from the states of the runs that should have made it."""
    states = set(runs["status"])
    if not states:
        return MISSING
    if "done" in states or states == {"not_applicable"}:
        return NOT_APPLICABLE  # ran (or cannot run) and this metric does not exist for the model
    if "failed" in states:
        return FAILED
    return MISSING


def _row_label(suite: str, model: str, many_suites: bool) -> str:
    return f"{suite}/{model}" if many_suites else model


# ---------------------------------------------------------------------------- per-benchmark tables
def benchmark_tables(runs: pd.DataFrame, aggregated: pd.DataFrame) -> list[Table]:
    """One table per (suite, benchmark): rows (dataset, model), columns the headline metrics."""
    tables = []
    for (suite, benchmark), group_runs in runs.groupby(["suite", "benchmark"], sort=True):
        agg = aggregated[(aggregated["suite"] == suite) & (aggregated["benchmark"] == benchmark)]
        headline = agg[agg["tags"] == ""]
        keys = (
            headline[["metric", "unit", "higher_is_better", "descriptive"]]
            .drop_duplicates(["metric", "unit"])
            .sort_values(["metric", "unit"])
        )
        table = Table(
            name=f"{suite}_{benchmark}",
            title=f"{suite}: {benchmark} benchmark",
            index=["dataset", "model"],
            best_within="dataset",
        )
        units_per_metric = keys.groupby("metric")["unit"].nunique()
        for item in keys.itertuples(index=False):
            header = metric_label(item.metric)
            if units_per_metric[item.metric] > 1:
                header = f"{header} ({item.unit})"
            direction = None if item.descriptive else bool(item.higher_is_better)  # descriptive: never ranked
            table.columns.append(Column(f"{item.metric}|{item.unit}", header, item.unit, direction))
        for (dataset, model), runs_here in group_runs.groupby(["dataset", "model"], sort=True):
            row = (dataset, model)
            table.rows.append(row)
            for column in table.columns:
                metric, unit = column.key.split("|", 1)
                found = headline[
                    (headline["dataset"] == dataset)
                    & (headline["model"] == model)
                    & (headline["metric"] == metric)
                    & (headline["unit"] == unit)
                ]
                table.cells[(row, column.key)] = (
                    _stats_cell(found.iloc[0]) if len(found) else Cell(text=state_text(runs_here))
                )
        if not table.columns:
            table.notes.append(
                "no metrics: " + ", ".join(f"{s} {n}×" for s, n in group_runs["status"].value_counts().items())
            )
        tables.append(mark_best(table))
    return tables


# ---------------------------------------------------------------------------- Tables 1 and 3
def nelbo_table(
    number: int, runs: pd.DataFrame, aggregated: pd.DataFrame, reference: Reference, datasets: list[str]
) -> Table | None:
    """Paper-style negative-ELBO table over ``datasets`` (measured ELBO runs only)."""
    runs = runs[(runs["benchmark"] == ELBO) & runs["dataset"].isin(datasets)]
    if runs.empty:
        return None
    agg = aggregated[(aggregated["benchmark"] == ELBO) & aggregated["dataset"].isin(datasets)]
    refs = reference.nelbo[reference.nelbo["table"] == f"table{number}"]
    many_suites = runs["suite"].nunique() > 1
    table = Table(
        name=f"table{number}_nelbo",
        title=f"Table {number}: negative ELBO per image on test episodes (lower is better)",
        index=["model"],
        show_ci=False,
    )
    models = runs[["suite", "model", "memory_class"]].drop_duplicates().sort_values(["suite", "model"])
    caveats = runs[runs["caveat"].fillna("") != ""].groupby(["suite", "model"])["caveat"].first().to_dict()
    rows = {
        (_row_label(m.suite, m.model, many_suites) + (" †" if (m.suite, m.model) in caveats else ""),): m
        for m in models.itertuples(index=False)
    }
    table.rows = list(rows)
    sources = set()
    for dataset in [d for d in datasets if d in set(runs["dataset"])]:
        group = reference.dataset_labels.get(dataset, dataset)
        measured = agg[agg["dataset"] == dataset]
        unit = str(measured["unit"].iloc[0]) if len(measured) else ""
        ref_here = refs[(refs["dataset"] == dataset) & refs["model"].isin(models["memory_class"])]
        for kind, metric, ref_header in (
            ("cond", "nelbo_cond", "reported, memory-conditional"),
            ("full", "nelbo_full", "reported, incl. KL(M)"),
        ):
            ref_kind = ref_here[ref_here["kind"] == kind]
            has_measured = (measured["metric"] == metric).any()
            if not has_measured and ref_kind.empty and kind == "full":
                continue
            key = f"{dataset}|{metric}"
            table.columns.append(Column(key, metric_label(metric), unit, False, group=group))
            for row, model in rows.items():
                found = measured[(measured["metric"] == metric) & (measured["model"] == model.model)]
                found = found[found["suite"] == model.suite]
                if len(found):
                    table.cells[(row, key)] = _stats_cell(found.iloc[0])
                    table.cells[(row, key)].unranked = (model.suite, model.model) in caveats
                else:
                    here = runs[
                        (runs["suite"] == model.suite) & (runs["model"] == model.model) & (runs["dataset"] == dataset)
                    ]
                    table.cells[(row, key)] = Cell(text=state_text(here))
            if ref_kind.empty:
                continue
            ref_unit = str(ref_kind["unit"].iloc[0])
            ref_key = f"{dataset}|ref_{kind}"
            table.columns.append(Column(ref_key, ref_header, ref_unit, False, reference=True, group=group))
            for row, model in rows.items():
                entry = ref_kind[ref_kind["model"] == model.memory_class]
                if len(entry):
                    item = entry.iloc[0]
                    table.cells[(row, ref_key)] = Cell(
                        mean=float(item["value"]), approx=str(item["note"]).startswith("≈")
                    )
                    sources.add(item["citation"])
                    if item["note"]:
                        table.notes.append(f"reported {item['method']}, {group}: {item['note']}")
                else:
                    table.cells[(row, ref_key)] = Cell(text=MISSING)
            if unit and ref_unit != unit:
                table.notes.append(f"{group}: measured in {unit}, reported in {ref_unit}")
    table.notes += [
        f"† {label[0].removesuffix(' †')}: not a valid bound, never marked best — {caveats[(m.suite, m.model)]}"
        for label, m in rows.items()
        if (m.suite, m.model) in caveats
    ]
    table.notes += [
        "NELBO-cond: memory written from the scored episode, local KLs only; NELBO-full adds KL(q(M)‖p(M))/T "
        "(models with a memory prior only, n/a otherwise). The two are never averaged or mixed.",
        "Reported numbers follow other protocols and are not like-for-like (docs/protocol.md); a reported column "
        "is filled only for rows whose model implements the cited method.",
        *(f"Source: {s}" for s in sorted(sources)),
    ]
    return mark_best(table)


def table_datasets(reference: Reference, runs: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(Table 1 datasets, Table 3 datasets): Table 3 holds the paper's Table 3 datasets, Table 1 the rest."""
    third = list(dict.fromkeys(reference.nelbo.loc[reference.nelbo["table"] == "table3", "dataset"]))
    first = list(dict.fromkeys(reference.nelbo.loc[reference.nelbo["table"] == "table1", "dataset"]))
    measured = sorted(set(runs.loc[runs["benchmark"] == ELBO, "dataset"]))
    first += [d for d in measured if d not in first and d not in third]
    return first, third


# ---------------------------------------------------------------------------- Table 2
def denoising_long(aggregated: pd.DataFrame, episode_lengths: dict[tuple[str, str, str], int]) -> pd.DataFrame:
    """Aggregated per-cell success rates with their noise, level and T tags (T 0: unknown)."""
    rows = []
    cells = aggregated[(aggregated["benchmark"] == DENOISING) & (aggregated["metric"] == SUCCESS_RATE)]
    for item in cells.to_dict("records"):
        noise, level, length = item.get("tag_noise"), item.get("tag_level"), item.get("tag_T")
        if not isinstance(noise, str) or pd.isna(level):
            continue
        try:
            level = float(level)
        except (TypeError, ValueError):
            continue
        per_t = not pd.isna(length)
        rows.append({**item, "noise": noise, "level": level, "T": int(length) if per_t else 0, "per_t": per_t})
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    # per (run group) prefer the per-T cells; the T-averaged ones stand in only where none exist
    has_per_t = frame.groupby(["suite", "model", "dataset"])["per_t"].transform("any")
    frame = frame[frame["per_t"] | ~has_per_t].copy()
    unknown = ~frame["per_t"]
    if unknown.any():
        frame.loc[unknown, "T"] = [
            episode_lengths.get(key, 0)
            for key in zip(frame.loc[unknown, "suite"], frame.loc[unknown, "model"], frame.loc[unknown, "dataset"])
        ]
    return frame


def denoising_table(
    runs: pd.DataFrame, aggregated: pd.DataFrame, reference: Reference, episode_lengths: dict[tuple[str, str, str], int]
) -> Table | None:
    """Table 2: success rate per (dataset, noise, level) × (T, model), reported GPM/DKM beside."""
    measured = denoising_long(aggregated, episode_lengths)
    if measured.empty:
        return None
    many_suites = measured["suite"].nunique() > 1
    measured["label"] = [_row_label(s, m, many_suites) for s, m in zip(measured["suite"], measured["model"])]
    unit = str(measured["unit"].iloc[0]) or "%"
    scale = 100.0 if unit in ("", "fraction") else 1.0  # show percentages like the paper
    unit = "%" if scale == 100.0 else unit
    table = Table(
        name="table2_denoising",
        title="Table 2: denoising success rate (higher is better)",
        index=["dataset", "noise", "level"],
        show_ci=False,
        show_n=True,
        best_across_group=True,
    )
    refs = reference.denoising
    row_keys = measured[["dataset", "noise", "level"]].drop_duplicates().sort_values(["dataset", "noise", "level"])
    table.rows = [(d, n, f"{lv:g}") for d, n, lv in row_keys.itertuples(index=False)]
    lengths = sorted(set(measured["T"]))
    classes = measured.drop_duplicates("label").set_index("label")["memory_class"]
    for length in lengths:
        group = f"T={length}" if length else "averaged over T"
        here = measured[measured["T"] == length]
        for label in sorted(set(here["label"])):
            key = f"{length}|{label}"
            table.columns.append(Column(key, label, unit, True, group=group))
            for row in table.rows:
                hit = here[(here["label"] == label) & (here["dataset"] == row[0]) & (here["noise"] == row[1])]
                hit = hit[hit["level"].map(lambda v: f"{v:g}") == row[2]]
                cell = _stats_cell(hit.iloc[0]) if len(hit) else Cell(text=MISSING)
                for name in ("mean", "std", "low", "high"):
                    setattr(cell, name, getattr(cell, name) * scale)
                table.cells[(row, key)] = cell
            reported = refs[(refs["T"] == length) & (refs["model"] == classes.get(label))]
            if reported.empty:
                continue
            ref_key = f"{length}|{label}|ref"
            table.columns.append(Column(ref_key, f"{label} reported", "%", True, reference=True, group=group))
            for row in table.rows:
                hit = reported[(reported["dataset"] == row[0]) & (reported["noise"] == row[1])]
                hit = hit[hit["level"].map(lambda v: f"{v:g}") == row[2]]
                table.cells[(row, ref_key)] = Cell(mean=float(hit["value"].iloc[0])) if len(hit) else Cell(text=MISSING)
    if any(c.reference and any(table.cell(r, c.key).has_value for r in table.rows) for c in table.columns):
        table.notes.append(
            f"Reported: {refs['citation'].iloc[0]} (binarized Omniglot; success = at most 1 % wrong pixels)."
        )
    table.notes.append("Bold: best measured model at the same T in each row.")
    return mark_best(drop_empty_reference_columns(table))


# ---------------------------------------------------------------------------- reported-only tables
def reported_tables(reference: Reference) -> list[Table]:
    """The papers' tables as printed (reference only), one per paper table."""
    tables = []
    for number in (1, 3):
        refs = reference.nelbo[reference.nelbo["table"] == f"table{number}"]
        table = Table(
            name=f"reported_table{number}",
            title=f"Reported (not measured here): {refs['citation'].iloc[0]}",
            index=["method"],
            show_ci=False,
            show_n=False,
        )
        for dataset in dict.fromkeys(refs["dataset"]):
            unit = str(refs.loc[refs["dataset"] == dataset, "unit"].iloc[0])
            table.columns.append(
                Column(dataset, reference.dataset_labels.get(dataset, dataset), unit, False, reference=True)
            )
        table.notes.append(
            "As printed, these columns mix memory-conditional numbers (K++, GPM) with bounds that include "
            "KL(q(M)‖p(M)) (KM, DKM); they are not like-for-like (docs/protocol.md)."
        )
        for item in refs.itertuples(index=False):
            row = (item.method,)
            if row not in table.rows:
                table.rows.append(row)
            table.cells[(row, item.dataset)] = Cell(mean=item.value, approx=str(item.note).startswith("≈"))
            if item.note:
                table.notes.append(
                    f"{item.method}, {reference.dataset_labels.get(item.dataset, item.dataset)}: {item.note}"
                )
        tables.append(table)
    refs = reference.denoising
    if not refs.empty:
        table = Table(
            name="reported_table2",
            title=f"Reported (not measured here): {refs['citation'].iloc[0]}",
            index=["noise"],
            show_ci=False,
            show_n=False,
        )
        for item in refs.itertuples(index=False):
            key = f"{item.method}|{item.T}"
            if all(c.key != key for c in table.columns):
                table.columns.append(Column(key, f"{item.method} T={item.T}", "%", True, reference=True))
            row = (item.label,)
            if row not in table.rows:
                table.rows.append(row)
            table.cells[(row, key)] = Cell(mean=item.value)
        tables.append(table)
    return tables


# ---------------------------------------------------------------------------- paired differences
def paired_table(paired: pd.DataFrame) -> Table | None:
    """Headline paired differences A − B on shared episodes, with their 95 % CI."""
    if paired.empty:
        return None
    table = Table(
        name="paired_differences",
        title="Paired differences on shared test episodes and queries (model A − model B)",
        index=["suite", "dataset", "metric", "A − B"],
        show_n=False,
    )
    table.columns = [
        Column("diff", "mean difference", "", None),
        Column("basis", "CI over", "", None),
        Column("better", "A better", "% of pairs", None),
    ]
    for item in paired.itertuples(index=False):
        row = (
            item.suite,
            item.dataset,
            f"{metric_label(item.metric)} [{item.unit}]",
            f"{item.model_a} − {item.model_b}",
        )
        table.rows.append(row)
        table.cells[(row, "diff")] = Cell(mean=item.mean_diff, low=item.ci95_low, high=item.ci95_high, n=item.n_seeds)
        table.cells[(row, "basis")] = Cell(text=str(item.ci_basis))
        table.cells[(row, "better")] = Cell(mean=100.0 * item.a_better_fraction)
    table.notes.append(
        "Negative differences favour A when lower is better. CI over seeds (per-seed mean differences) when two "
        "or more seeds share episodes, else over the paired episodes or queries (paired t). 'A better': share of "
        "pairs where A is strictly better. Per-query values are pooled over every T, noise and level of a run."
    )
    if any(math.isnan(v) for v in paired["ci95_low"]):
        table.notes.append("No CI where only one paired value exists.")
    return table
