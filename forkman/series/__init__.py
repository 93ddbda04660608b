"""Layer 6, patch series: the patch file format and carrying a series across releases."""
