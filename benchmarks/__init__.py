"""Benchmarks: one module per registered benchmark at the top (elbo, denoising, generation,
capacity, retrieval, energy, runtime) with the protocol and registry in :mod:`.base`; the
machinery they share in :mod:`.common`; the hand-run speed scripts in :mod:`.speed`; the GPM
reference-parity pair in :mod:`.parity`."""
