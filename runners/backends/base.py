"""The one small interface every backend implements, and the plan it executes.

A backend has a name (its registry name), resource options (a config dataclass, the suite's
``resources.<name>`` section, and command-line flags on top), a ``check`` of this machine before
anything is written, a ``describe`` for ``--dry-run`` and an ``execute``. The ``run`` command
does the rest the same way for all of them: it loads the suite, plans the runs, prepares their
directories, then hands the plan to the backend.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from memorybench.runners.dispatch import PlannedRun


@dataclass(frozen=True, kw_only=True)
class NoResources:
    """A backend that takes no resource options."""

    def validate(self) -> None:
        pass


@dataclass
class Plan:
    """A suite planned for execution: every planned run, and the prepared ones to execute."""

    suite_name: str
    suite_dir: Path
    runs: list[PlannedRun]  # every run of the suite, with what to do about it
    todo: list[PlannedRun] = field(default_factory=list)  # prepared runs this invocation executes
    includes: tuple[str, ...] = ()  # plugin modules (absolute paths for files) each run imports first
    note: str = ""  # the suite's note, printed under the summary

    @property
    def will_run(self) -> int:
        return sum(run.will_run for run in self.runs)


class Backend:
    """Base class of the registered backends; ``resources`` is a validated ``config_class``."""

    registry_name: ClassVar[str] = ""
    config_class: ClassVar[type] = NoResources
    # argparse ``dest`` -> flag of every option add_arguments adds (to refuse them under another runner)
    options: ClassVar[dict[str, str]] = {}

    def __init__(self, resources: Any):
        self.resources = resources

    @classmethod
    def takes_resources(cls) -> bool:
        """Whether a suite may have a ``resources.<name>`` section for this backend."""
        return bool(dataclasses.fields(cls.config_class))

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add this backend's resource options to ``memorybench run`` (default None: not given)."""

    @classmethod
    def given_options(cls, args: argparse.Namespace) -> list[str]:
        """The flags of this backend the user gave."""
        return [flag for dest, flag in cls.options.items() if getattr(args, dest, None) not in (None, False, [])]

    @classmethod
    def settings(cls, section: Mapping[str, Any] | None, args: argparse.Namespace | None) -> dict[str, Any]:
        """The suite's ``resources.<name>`` section with the given flags (parsed) on top; ``args``
        None: the section alone. The registry validates the result into ``config_class``."""
        return dict(section or {})

    def check(self) -> None:
        """Refuse what this machine cannot do (no sbatch, GPUs it lacks) with a one-line ConfigError."""

    def describe(self, plan: Plan) -> list[str]:
        """Lines ``--dry-run`` prints after the plan: what this backend would ask for."""
        return []

    def execute(self, plan: Plan, options: argparse.Namespace) -> int:
        """Execute ``plan.todo``; the exit status (0: every run done, 1: some failed)."""
        raise NotImplementedError


def finish(plan: Plan) -> int:
    """Summary table from the run directories, the suite's note, one line on who came first and
    the next command; exit status 1 when any run failed."""
    from memorybench.reports.tables import frame_markdown
    from memorybench.runners.summary import verdict, write_summary

    run_dirs = [run.run_dir for run in plan.runs]
    table = write_summary(plan.suite_dir, run_dirs, plan.note)
    print()
    print(frame_markdown(table) if not table.empty else "(no results)")
    if plan.note:
        print(f"note: {plan.note}")
    print(f"results: {plan.suite_dir}/summary.csv, {plan.suite_dir}/summary.md and one directory per run")
    for line in verdict(run_dirs, plan.note):
        print(line)
    print(
        f"next: memorybench report {plan.suite_dir}   (tables with confidence intervals, figures, paired differences)"
    )
    unfinished = int(table["status"].isin(["failed", "interrupted", "damaged"]).sum()) if "status" in table else 0
    return 1 if unfinished else 0
