"""Runners: suite planning, the CLI, and one module per execution backend."""
