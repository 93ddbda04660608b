"""Red-team tests: each attack on forkman's trust boundary, through the real CLI."""
