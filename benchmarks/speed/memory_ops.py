"""Memory-operation benchmark: time and peak memory of ``memory.write`` + ``memory.read`` alone.

No encoder or decoder: random codes ``[B, T, C]`` are written into a fresh (untrained) latent
memory of a registered model and read back (``latent_memory.read(codes, state)``, the sampled read
used in training). Expectations from the papers: GPM's pseudo-inverse write is
parallel over T and grows slowly with T; DKM's write is T sequential K×K solves (linear in T with
a large constant); KM's batch write factorises a T×T matrix (cubic in T at large T).

One point:

    python -m memorybench.benchmarks.speed.memory_ops --memory gpm --episode-length 64 --memory-size 32 [--code-size 100] [--batch 32]

prints a summary line and ends with one JSON line holding ``write_read_ms`` (median of the timed
write+read calls), ``write_ms``, ``read_ms``, ``peak_mb`` and the settings. Timing: ``--warmup``
untimed calls, then ``--repeats`` timed ones, ``torch.cuda.synchronize`` around each on GPUs.
Peak memory (one extra, untimed call): on CUDA ``torch.cuda.max_memory_allocated`` above what was
held before; on CPU the peak of torch's allocations minus frees during the call, read from
``torch.profiler`` memory events (tensor storage only; tracemalloc cannot see torch's allocator).

A grid, each point in a fresh subprocess (so one point's allocations never affect another's):

    python -m memorybench.benchmarks.speed.memory_ops --grid --memories gpm,dkm,km --lengths 16,32,64,128,256,512,1024 \\
        --sizes 16,32,64,128 --csv memory_ops.csv

prints a Markdown table of ``write_read_ms`` (and ``peak_mb``) per T and writes every point to CSV.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

import torch

from memorybench import memories
from memorybench.benchmarks.common.artifacts import atomic_write_csv
from memorybench.benchmarks.common.overrides import add_override_argument, parse_overrides
from memorybench.benchmarks.common.timing import PeakMemory, memory_call, peak_memory_mb, summarize, time_calls
from memorybench.benchmarks.common.trainer import pick_device


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m memorybench.benchmarks.speed.memory_ops", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--memory", default="gpm", help="registered memory model (default: gpm)")
    parser.add_argument("--episode-length", type=int, default=32, help="T: codes written (default 32)")
    parser.add_argument("--memory-size", type=int, default=32, help="K: memory slots (default 32)")
    parser.add_argument("--code-size", type=int, default=100, help="C: code size (default 100)")
    parser.add_argument("--batch", type=int, default=32, help="B: episodes per call (default 32)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls (default 2)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls; the median is reported (default 5)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda[:i]")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-peak", dest="peak", action="store_false", help="skip the peak-memory call")
    add_override_argument(parser, "model config override, value parsed as YAML")
    grid = parser.add_argument_group("grid mode (each point in a fresh subprocess)")
    grid.add_argument("--grid", action="store_true", help="measure every memory × T × K combination")
    grid.add_argument("--memories", default="gpm,dkm,km", help="comma-separated models (default gpm,dkm,km)")
    grid.add_argument("--lengths", default="16,32,64,128,256,512,1024", help="comma-separated T values")
    grid.add_argument("--sizes", default="16,32,64,128", help="comma-separated K values")
    grid.add_argument("--timeout", type=float, default=600.0, help="seconds per point before it is recorded as skipped")
    grid.add_argument("--csv", default=None, help="write every grid point to this CSV file")
    return parser


def measure(
    memory_name: str,
    length: int,
    size: int,
    code_size: int,
    batch: int,
    *,
    warmup: int = 2,
    repeats: int = 5,
    device: torch.device | None = None,
    peak: bool = True,
    seed: int = 0,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Time write+read of random codes on a fresh ``memory_name``; the JSON-ready result."""
    device = device or pick_device()
    cls = memories.MEMORIES.get(memory_name)
    settings: dict[str, Any] = {"code_size": code_size, "episode_length": length, "network": "mlp", "hidden_size": 8}
    if "memory_size" in cls.config_class.__dataclass_fields__:
        settings["memory_size"] = size
    settings.update(overrides or {})
    result: dict[str, Any] = {
        "memory": memory_name,
        "T": length,
        "K": settings.get("memory_size"),
        "C": code_size,
        "B": batch,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    torch.manual_seed(seed)
    model = memories.create(memory_name, **settings).to(device).eval()
    latent = model.latent_memory
    if latent is None:
        return {
            **result,
            "status": "not_applicable",
            "reason": "the model has no latent memory",
            "write_read_ms": None,
            "peak_mb": None,
        }
    codes = torch.randn(batch, length, code_size, generator=torch.Generator().manual_seed(seed)).to(device)
    call = memory_call(latent, codes, device)
    timings = time_calls(call, device, warmup, repeats)
    stats = summarize(timings["total"])
    result.update(
        status="done",
        write_read_ms=round(stats["median"], 4),
        write_read_mean_ms=round(stats["mean"], 4),
        write_read_iqr_ms=round(stats["iqr"], 4),
        write_ms=round(summarize(timings["write"])["median"], 4),
        read_ms=round(summarize(timings["read"])["median"], 4),
        repeats=repeats,
        warmup=warmup,
        peak_mb=None,
        peak_method=PeakMemory(device).method,
    )
    if peak:
        value = peak_memory_mb(call, device)
        result["peak_mb"] = None if value is None else round(value, 3)
    return result


def run_grid(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every memory × T × K point in a fresh subprocess; prints a table, returns the results."""
    names = [n for n in args.memories.split(",") if n]
    lengths = [int(t) for t in args.lengths.split(",") if t]
    sizes = [int(k) for k in args.sizes.split(",") if k]
    results: list[dict[str, Any]] = []
    for name in names:
        for size in sizes:
            for length in lengths:
                command = [
                    sys.executable, "-m", "memorybench.benchmarks.speed.memory_ops", "--memory", name, "--episode-length", str(length),
                    "--memory-size", str(size), "--code-size", str(args.code_size), "--batch", str(args.batch),
                    "--warmup", str(args.warmup), "--repeats", str(args.repeats), "--device", args.device,
                    "--seed", str(args.seed), *(["--threads", str(args.threads)] if args.threads else []),
                    *(["--no-peak"] if not args.peak else []), *(x for o in args.overrides for x in ("--set", o)),
                ]  # fmt: skip
                started = time.perf_counter()
                try:
                    done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout, check=False)
                    lines = done.stdout.strip().splitlines()
                    point = json.loads(lines[-1]) if done.returncode == 0 and lines else None
                    if point is None:
                        error = (done.stderr.strip().splitlines() or ["no output"])[-1]
                        point = {"memory": name, "T": length, "K": size, "status": f"failed: {error}"}
                except subprocess.TimeoutExpired:
                    point = {"memory": name, "T": length, "K": size, "status": f"skipped: over {args.timeout:g} s"}
                point["wall_s"] = round(time.perf_counter() - started, 2)
                results.append(point)
                print(f"{name:<5} K={size:<4} T={length:<5} write_read_ms={point.get('write_read_ms')} "
                      f"peak_mb={point.get('peak_mb')} ({point['status']})", flush=True)  # fmt: skip
    print(markdown_table(results, names, sizes, lengths))
    if args.csv:
        atomic_write_csv(args.csv, results)
        print(f"wrote {args.csv}")
    return results


def markdown_table(results: list[dict[str, Any]], names: list[str], sizes: list[int], lengths: list[int]) -> str:
    """Rows T; columns model/K; cells 'median ms (peak MB)'."""
    index = {(r["memory"], r.get("K"), r["T"]): r for r in results}
    columns = [(n, k) for n in names for k in sizes]
    header = "| T | " + " | ".join(f"{n} K={k}" for n, k in columns) + " |"
    lines = [header, "|---" * (len(columns) + 1) + "|"]
    for length in lengths:
        cells = []
        for name, size in columns:
            point = index.get((name, size, length), {})
            if point.get("write_read_ms") is None:
                cells.append(point.get("status", "").split(":")[0] or "-")
            else:
                peak = point.get("peak_mb")
                cells.append(f"{point['write_read_ms']:.2f} ms" + (f" ({peak:.1f} MB)" if peak is not None else ""))
        lines.append(f"| {length} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any] | list[dict[str, Any]]:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.grid:
        return run_grid(args)
    for name, value in (("--episode-length", args.episode_length), ("--memory-size", args.memory_size),
                        ("--code-size", args.code_size), ("--batch", args.batch), ("--repeats", args.repeats)):  # fmt: skip
        if value < 1:
            print(f"memory_ops: error: {name} must be positive, got {value}", file=sys.stderr)
            raise SystemExit(2)
    try:
        result = measure(
            args.memory,
            args.episode_length,
            args.memory_size,
            args.code_size,
            args.batch,
            warmup=args.warmup,
            repeats=args.repeats,
            device=pick_device(args.device),
            peak=args.peak,
            seed=args.seed,
            overrides=parse_overrides(args.overrides),
        )
    except (memories.ConfigError, memories.RegistryError) as error:
        print(f"memory_ops: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    if result["status"] == "done":
        print(
            f"{args.memory}: B={args.batch} T={args.episode_length} K={result['K']} C={args.code_size} on {result['device']} "
            f"({result['threads']} threads): write+read {result['write_read_ms']:.3f} ms "
            f"(write {result['write_ms']:.3f}, read {result['read_ms']:.3f}), peak {result['peak_mb']} MB"
        )
    else:
        print(f"{args.memory}: {result['status']}: {result['reason']}")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    os.environ.setdefault("KINETO_LOG_LEVEL", "5")
    main()
