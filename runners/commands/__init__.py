"""The subcommands of ``memorybench``, one module each.

Every module has ``HELP`` (its line in ``memorybench --help``), ``add_arguments(parser)``,
``run(args)`` (the handler; returns the exit status) and ``main(argv)``. Modules import only the
standard library at import time: torch, the models and the benchmarks are imported inside
``run`` by the commands that need them, so ``memorybench --help`` and ``list`` stay fast.
"""

COMMANDS = ("list", "run", "tune", "evaluate", "status", "report", "merge", "validate", "new")
