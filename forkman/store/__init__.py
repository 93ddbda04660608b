"""Layer 2, the store: tree hashes, each fork's history repository and crash-safe transactions."""
