"""The inline backend (the default): every run in this process, one after another."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING

from memorybench.runners.backends import register_backend
from memorybench.runners.backends.base import Backend, Plan, finish

if TYPE_CHECKING:
    from memorybench.runners.dispatch import PlannedRun


def run_inline(runs: Sequence[PlannedRun], progress: bool | None = None) -> None:
    """Execute ``runs`` here, in order. Ctrl-C or SIGTERM leaves the run in flight resumable
    (pending), not failed. A run another process is running (its lock is held) is skipped."""
    from memorybench.runners.execute import execute_run, treat_sigterm_as_interrupt
    from memorybench.runners.schema import RunBusyError

    treat_sigterm_as_interrupt()
    for index, run in enumerate(runs, 1):
        print(f"[{index}/{len(runs)}] {run.action} {run.spec.run_id}", flush=True)
        try:
            result = execute_run(run.spec, run.run_dir, progress=progress)
        except RunBusyError:
            print(f"[{index}/{len(runs)}] skipped {run.spec.run_id}: another process is running it", flush=True)
            continue
        detail = result.get("error") or result.get("reason") or ""
        print(
            f"[{index}/{len(runs)}] {result['status']} {run.spec.run_id} ({result['wall_time_s']:.1f} s) {detail}".rstrip(),
            flush=True,
        )


@register_backend("inline")
class InlineBackend(Backend):
    """Every run in this process, one after another (the default)."""

    def describe(self, plan: Plan) -> list[str]:
        return [f"inline: {plan.will_run} runs one after another in this process"]

    def execute(self, plan: Plan, options: argparse.Namespace) -> int:
        run_inline(plan.todo, progress=None if getattr(options, "progress", True) else False)
        return finish(plan)
