"""How many CPU threads a run uses: the cores it was given, and no more.

The rule, first match wins (:func:`run_threads`):

1. ``train.threads`` > 0 in the suite: that many;
2. ``OMP_NUM_THREADS`` in the environment: that many (the local pool sets it for each worker to
   its share of the cores, cores divided by workers, unless the user set it);
3. ``SLURM_CPUS_PER_TASK`` (inside a SLURM job): the CPUs the job was given;
4. otherwise the cores this process may run on (its CPU affinity and, in a container, its CPU
   quota), at most :data:`MAX_AUTO_THREADS`.

The count and the rule that chose it are recorded in ``result.json``'s environment (``threads``,
``threads_from``). torch's own default is every physical core of the machine, whatever the
process was given: N pool workers would oversubscribe the CPU N times and a SLURM job would
spread over a shared node.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

MAX_AUTO_THREADS = 8  # the automatic choice stops here; train.threads or OMP_NUM_THREADS may ask for more
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")  # cgroup v2: "<quota> <period>" or "max <period>"


def _positive(text: str | None) -> int | None:
    try:
        value = int(str(text).strip())
    except ValueError:
        return None
    return value if value > 0 else None


def cpu_quota(path: Path = CGROUP_CPU_MAX) -> int | None:
    """Cores a container's CPU quota allows (rounded up), or None without a quota."""
    try:
        quota, period = path.read_text().split()[:2]
        return max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        return None


def available_cores() -> int:
    """The cores this process may run on: its affinity mask, narrowed by a container's CPU quota."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = cpu_quota()
    return max(1, min(cores, quota) if quota else cores)


def run_threads(requested: int = 0, environ: Mapping[str, str] | None = None) -> tuple[int, str]:
    """(threads, the rule that chose them) for a run whose ``train.threads`` is ``requested`` (0: not set)."""
    environ = os.environ if environ is None else environ
    if requested > 0:
        return requested, "train.threads"
    for name in ("OMP_NUM_THREADS", "SLURM_CPUS_PER_TASK"):
        value = _positive(environ.get(name))
        if value:
            return value, name
    cores = available_cores()
    return min(cores, MAX_AUTO_THREADS), f"cores available ({cores}, at most {MAX_AUTO_THREADS})"


@contextlib.contextmanager
def using_threads(requested: int = 0) -> Iterator[tuple[int, str]]:
    """Set torch's thread count by :func:`run_threads` for the duration of a run, then restore it."""
    import torch

    threads, source = run_threads(requested)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield threads, source
    finally:
        torch.set_num_threads(before)


__all__ = ["MAX_AUTO_THREADS", "available_cores", "cpu_quota", "run_threads", "using_threads"]
