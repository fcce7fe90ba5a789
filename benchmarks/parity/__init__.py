"""GPM reference parity: a re-creation of the public GPM code (:mod:`.reference_gpm`) and the
script training it side by side with the suite's ``gpm`` (``python -m memorybench.benchmarks.parity.gpm_parity``)."""
