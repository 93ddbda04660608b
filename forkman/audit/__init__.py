"""Supply-chain audit of forks: vulnerabilities, provenance, risky upstream changes."""
