"""Layer 6, fork test suites: test dependencies, the test environment, the sandboxed run."""
