"""Periodic one-line progress records for long loops, for consoles and logs without a progress bar.

A bar (tqdm) is drawn only on a terminal; under a scheduler, a pipe or a worker pool nothing would
say for many minutes that a run is alive. :class:`ProgressRecord` writes a line such as

    [23:41:07] train gpm: step 120/500 (24%), loss 152.31, 4.1 steps/s, ETA 1 min 33 s

every ``every_s`` seconds (``MEMORYBENCH_PROGRESS_EVERY``, default 30; 0 turns it off) to stderr
when no bar is shown, and always to the run's log file when one is given (unless stderr is that
file already, as in a local-pool worker, so a line is never written twice).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path

PROGRESS_EVERY_ENV = "MEMORYBENCH_PROGRESS_EVERY"
DEFAULT_EVERY_S = 30.0


def progress_every(default: float = DEFAULT_EVERY_S) -> float:
    """Seconds between records: ``$MEMORYBENCH_PROGRESS_EVERY`` when it is a number >= 0, else ``default``."""
    text = os.environ.get(PROGRESS_EVERY_ENV, "").strip()
    try:
        value = float(text)
    except ValueError:
        return default
    return value if value >= 0 else default


def duration(seconds: float) -> str:
    """``1 h 02 min``, ``1 min 33 s`` or ``42 s``."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def _same_file(stream: object, path: Path) -> bool:
    """Whether ``stream`` (e.g. sys.stderr) writes into ``path``."""
    try:
        return os.path.samestat(os.fstat(stream.fileno()), os.stat(path))  # type: ignore[attr-defined]
    except (OSError, AttributeError, ValueError):
        return False


class ProgressRecord:
    """Records of a loop from ``start`` to ``total`` steps; call :meth:`update` after every step."""

    def __init__(
        self,
        label: str,
        total: int,
        start: int = 0,
        *,
        every_s: float | None = None,
        console: bool = True,
        log_path: str | Path | None = None,
    ):
        self.label = label
        self.total = total
        self.start = start
        self.every_s = progress_every() if every_s is None else every_s
        self.console = console
        self.log_path = Path(log_path) if log_path is not None else None
        self.began = self.last = time.monotonic()
        self.records = 0

    def line(self, step: int, loss: float, now: float | None = None) -> str:
        """The record at ``step`` (rate and ETA over the steps this call has done)."""
        elapsed = (time.monotonic() if now is None else now) - self.began
        rate = (step - self.start) / elapsed if elapsed > 0 else 0.0
        eta = duration((self.total - step) / rate) if rate > 0 else "unknown"
        share = f" ({100 * step / self.total:.0f}%)" if self.total else ""
        return (
            f"[{time.strftime('%H:%M:%S')}] {self.label}: step {step}/{self.total}{share}, "
            f"loss {loss:.2f}, {rate:.1f} steps/s, ETA {eta}"
        )

    def update(self, step: int, loss: float) -> None:
        """Write a record when ``every_s`` seconds have passed since the last one (and at the last step).

        A loop that ends before its first periodic record leaves the console quiet (a short run
        prints nothing extra); its log still gets the final record."""
        if self.every_s <= 0:
            return
        now = time.monotonic()
        final = step >= self.total
        if now - self.last < self.every_s and not final:
            return
        if final and step - self.start < 1:
            return
        self.last = now
        self.write(self.line(step, loss, now), console=self.console and (self.records > 0 or not final))
        self.records += 1

    def write(self, text: str, console: bool | None = None) -> None:
        console = self.console if console is None else console
        if console:
            print(text, file=sys.stderr, flush=True)
        if self.log_path is not None and not (console and _same_file(sys.stderr, self.log_path)):
            with contextlib.suppress(OSError), open(self.log_path, "a", encoding="utf-8") as log:
                log.write(text + "\n")


__all__ = ["DEFAULT_EVERY_S", "PROGRESS_EVERY_ENV", "ProgressRecord", "duration", "progress_every"]
