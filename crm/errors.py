from __future__ import annotations


class DomainError(Exception):
    """A broken business rule. Services raise subclasses; views turn them into form errors or 4xx answers."""
