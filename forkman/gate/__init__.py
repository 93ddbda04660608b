"""Layer 3, the gate: does the tree on disk match the lock (``forkman check``)."""
