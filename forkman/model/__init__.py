"""Layer 1, the model: configuration, the lock, the project and the trust of its state."""
