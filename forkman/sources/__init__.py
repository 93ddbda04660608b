"""Upstream sources: package indexes and git repositories."""
