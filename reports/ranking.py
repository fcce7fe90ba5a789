"""Model ranks with their uncertainty: a paired bootstrap over test episodes and seeds.

Every model of a suite is scored on the same test episodes (and queries), so one resample draws
the seeds with replacement and, independently, the shared episodes with replacement, and
recomputes every model's mean on that same draw — the resampling keeps the pairing, so the noise
the models share (which episodes happen to be easy) moves all of them together. A model's rank
interval is the 2.5–97.5 % range of its rank over the resamples; models whose interval reaches
rank 1 are statistically tied for first. With one seed the bootstrap is over episodes only: the
intervals are then conditional on the one trained model of each (training noise not included),
and ``basis`` says so.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from memorybench.reports.aggregate import episode_tables
from memorybench.reports.load import Results
from memorybench.reports.paper_tables import metric_label
from memorybench.reports.tables import Cell, Table, listing_table

# Per-unit columns worth ranking, and whether higher is better (the rest are terms and diagnostics).
RANKED: dict[str, bool] = {
    "nelbo_cond": False,
    "nelbo_full": False,
    "nelbo_heldout": False,
    "nll_is": False,
    "hamming_final": False,
    "success": True,
}
RESAMPLES = 2000
COLUMNS = [
    *("suite", "dataset", "benchmark", "metric", "model", "mean", "rank"),
    *("rank_low", "rank_high", "p_best", "tied_for_first", "n_seeds", "n_units", "basis"),
]


def bootstrap_ranks(results: Results, resamples: int = RESAMPLES, seed: int = 0) -> pd.DataFrame:
    """One row per (suite, dataset, benchmark, metric, model): the mean over shared units, the
    rank of that mean (1 = best), the 95 % bootstrap rank interval, P(best) and ``tied_for_first``.

    Only units (seed, episode or query) that every model of the group scored are used; groups
    with fewer than two models are left out.
    """
    units = episode_tables(results)
    units = units[units["metric"].isin(list(RANKED))]
    rows: list[dict] = []
    rng = np.random.default_rng(seed)
    for (suite, dataset, benchmark, metric), group in units.groupby(["suite", "dataset", "benchmark", "metric"]):
        table = group.pivot_table(index=["seed", "protocol", "unit"], columns="model", values="value", aggfunc="first")
        table = table.dropna()
        if table.shape[1] < 2 or table.empty:
            continue
        models = list(table.columns)
        seeds = sorted(table.index.get_level_values("seed").unique())
        # values [S, E, M]: the same units under every seed (units missing under a seed are dropped)
        shared = set.intersection(*(set(table.loc[s].index) for s in seeds))
        if not shared:
            continue
        order = sorted(shared)
        values = np.stack([table.loc[s].loc[order].to_numpy(float) for s in seeds])
        higher = RANKED[metric]
        ranks = _resampled_ranks(values, higher, resamples, rng)
        point = _ranks(values.mean((0, 1))[None], higher)[0]
        for m, model in enumerate(models):
            low, high = np.percentile(ranks[:, m], [2.5, 97.5])
            rows.append(
                {
                    "suite": suite,
                    "dataset": dataset,
                    "benchmark": benchmark,
                    "metric": metric,
                    "model": model,
                    "mean": float(values[..., m].mean()),
                    "rank": int(point[m]),
                    "rank_low": int(np.floor(low)),
                    "rank_high": int(np.ceil(high)),
                    "p_best": float((ranks[:, m] == 1).mean()),
                    "tied_for_first": bool(np.floor(low) <= 1),
                    "n_seeds": len(seeds),
                    "n_units": len(order),
                    "basis": f"{len(seeds)} seeds × {len(order)} shared units"
                    if len(seeds) > 1
                    else f"{len(order)} shared units, one seed (training noise not included)",
                }
            )
    return pd.DataFrame(rows, columns=COLUMNS)


def _resampled_ranks(values: np.ndarray, higher: bool, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Ranks ``[resamples, M]`` of the models' means over resampled seeds and units of ``values`` ``[S, E, M]``."""
    seeds, units, _ = values.shape
    means = np.empty((resamples, values.shape[2]))
    for r in range(resamples):
        drawn_seeds = rng.integers(0, seeds, seeds)
        drawn_units = rng.integers(0, units, units)
        means[r] = values[drawn_seeds][:, drawn_units].mean((0, 1))
    return _ranks(means, higher)


def _ranks(means: np.ndarray, higher: bool) -> np.ndarray:
    """Competition ranks (1 = best; ties share the better rank) of each row of ``means`` ``[R, M]``."""
    signed = -means if higher else means
    return (signed[:, None, :] < signed[:, :, None]).sum(-1) + 1


def ranking_table(ranks: pd.DataFrame) -> Table | None:
    """The rank table of the report: per metric, each model's mean, rank and 95 % rank interval."""
    if ranks.empty:
        return None
    table = listing_table(
        "ranks",
        "Ranks with their uncertainty (paired bootstrap over shared test episodes and seeds)",
        ["suite", "dataset", "metric", "model"],
        [
            ("mean", "mean", ""),
            ("rank", "rank", ""),
            ("interval", "95 % rank interval", ""),
            ("p_best", "P(best)", "%"),
            ("tied", "tied for first", ""),
        ],
    )
    for item in ranks.sort_values(["suite", "dataset", "metric", "rank", "model"]).itertuples(index=False):
        row = (item.suite, item.dataset, metric_label(item.metric), item.model)
        table.rows.append(row)
        table.cells[(row, "mean")] = Cell(mean=item.mean)
        table.cells[(row, "rank")] = Cell(text=str(item.rank))
        table.cells[(row, "interval")] = Cell(text=f"{item.rank_low}–{item.rank_high}")
        table.cells[(row, "p_best")] = Cell(mean=100.0 * item.p_best)
        table.cells[(row, "tied")] = Cell(text="yes" if item.tied_for_first else "")
    bases = sorted(set(ranks["basis"]))
    table.notes.append(
        f"Each of {RESAMPLES} resamples draws seeds and shared episodes (or queries) with replacement and ranks the "
        "models' means on that same draw. Models whose interval reaches 1 are statistically tied for first. "
        "Basis: " + "; ".join(bases) + "."
    )
    return table
