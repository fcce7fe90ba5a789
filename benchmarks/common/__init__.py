"""What the benchmarks share; no benchmark is registered here.

``datasets`` (the dataset registry and built-in sets), ``episodes`` (fixed and random episodes),
``trainer`` (the one training step and loop, checkpoints), ``metrics``, ``corruptions``,
``reading`` (iterative reading and denoising through the model's own ``iterative_read``),
``timing`` (timed calls, the one peak-memory meter), ``artifacts`` (atomic file writes),
``images`` (per-run image grids and histograms; line charts are declared, never drawn here) and
``overrides`` (the hand-run scripts' ``--set``).
"""
