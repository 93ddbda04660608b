"""Reports over the model and the operations: licenses, SBOMs, rendered templates."""
