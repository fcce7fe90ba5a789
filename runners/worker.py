"""One run in a fresh process: ``python -m memorybench.runners.worker RUN_DIR [--include MODULE_OR_FILE ...]``.

The local pool starts one of these per run (a crash, OOM kill or ``kill -9`` takes down this run
only). The run is read from ``RUN_DIR/spec.json`` — the spec is all a worker receives — and
executed by :func:`runners.execute.execute_run`, which records success or failure itself. SIGTERM
(the pool stopping) is turned into an interruption: the run is left resumable, not failed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

EXIT_INTERRUPTED = 130
EXIT_BUSY = 75  # another process holds the run's lock: it is running this run (nothing was done)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m memorybench.runners.worker", description=__doc__)
    parser.add_argument("run_dir", help="a run directory prepared by `memorybench run` (holds spec.json)")
    parser.add_argument("--include", action="append", default=[], help="plugin module or .py file to import first")
    args = parser.parse_args(argv)
    from memorybench.runners.execute import treat_sigterm_as_interrupt

    treat_sigterm_as_interrupt()

    from memorybench.memories.registry import import_user_module
    from memorybench.runners.execute import execute_run
    from memorybench.runners.schema import SPEC_FILE, RunBusyError, read_json
    from memorybench.runners.suite import RunSpec

    for module in args.include:
        import_user_module(module)
    run_dir = Path(args.run_dir)
    payload = read_json(run_dir / SPEC_FILE)
    if payload is None:
        print(f"worker: {run_dir / SPEC_FILE}: missing or unreadable", file=sys.stderr)
        return 2
    spec = RunSpec.from_dict(payload)
    if spec.run_id != run_dir.name:
        print(f"worker: spec.json describes {spec.run_id}, not {run_dir.name}", file=sys.stderr)
        return 2
    try:
        result = execute_run(spec, run_dir, progress=False)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except RunBusyError as error:
        print(f"worker: {error}", file=sys.stderr)
        return EXIT_BUSY
    print(f"worker: {spec.run_id} {result['status']} in {result['wall_time_s']:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
