"""The marketing-to-sales handoff queue."""
