"""The papers' reported numbers (``reference_values.yaml``) as pandas tables.

Reference values are never results: the tables built here only feed columns and tables that are
labelled "reported", and they are never candidates for the best-value mark.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

REFERENCE_FILE = Path(__file__).with_name("reference_values.yaml")
NELBO_COLUMNS = ["table", "source", "citation", "method", "model", "kind", "dataset", "value", "unit", "note"]
DENOISING_COLUMNS = [
    "source",
    "citation",
    "method",
    "model",
    "dataset",
    "T",
    "noise",
    "level",
    "label",
    "value",
    "unit",
]


@dataclass(frozen=True)
class Reference:
    """Reported values, long format."""

    nelbo: pd.DataFrame  # NELBO_COLUMNS
    denoising: pd.DataFrame  # DENOISING_COLUMNS
    sources: dict[str, dict[str, str]]
    dataset_labels: dict[str, str]

    def citation(self, source: str) -> str:
        return self.sources.get(source, {}).get("citation", source)


def load_reference(path: str | Path | None = None) -> Reference:
    """Parse the reference file (``yaml.safe_load``) into long tables."""
    return _load(str(path or REFERENCE_FILE))


@lru_cache(maxsize=4)
def _load(path: str) -> Reference:
    with open(path, encoding="utf-8") as file:
        data: dict[str, Any] = yaml.safe_load(file) or {}
    sources = data.get("sources") or {}
    units = data.get("units") or {}
    nelbo_rows = []
    for entry in data.get("nelbo") or []:
        notes = entry.get("notes") or {}
        for dataset, value in (entry.get("values") or {}).items():
            nelbo_rows.append(
                {
                    "table": entry["table"],
                    "source": entry["source"],
                    "citation": sources.get(entry["source"], {}).get("citation", entry["source"]),
                    "method": entry["method"],
                    "model": entry.get("model"),
                    "kind": entry["kind"],
                    "dataset": dataset,
                    "value": float(value),
                    "unit": units.get(dataset, ""),
                    "note": notes.get(dataset, ""),
                }
            )
    denoising = data.get("denoising") or {}
    noises = denoising.get("noises") or []
    denoising_rows = []
    for entry in denoising.get("entries") or []:
        for noise, value in zip(noises, entry["values"]):
            denoising_rows.append(
                {
                    "source": denoising.get("source", ""),
                    "citation": sources.get(denoising.get("source", ""), {}).get("citation", ""),
                    "method": entry["method"],
                    "model": entry.get("model"),
                    "dataset": denoising.get("dataset", ""),
                    "T": int(entry["T"]),
                    "noise": noise["noise"],
                    "level": float(noise["level"]),
                    "label": noise["label"],
                    "value": float(value),
                    "unit": denoising.get("unit", "%"),
                }
            )
    return Reference(
        nelbo=pd.DataFrame(nelbo_rows, columns=NELBO_COLUMNS),
        denoising=pd.DataFrame(denoising_rows, columns=DENOISING_COLUMNS),
        sources=sources,
        dataset_labels=data.get("dataset_labels") or {},
    )
