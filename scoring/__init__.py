"""Qualification criteria, score computation and stage rules."""
