"""Layer 9, the CI check: ``forkman ci`` with the base revision's policy, its output formats."""
