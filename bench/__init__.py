"""Benchmarks (``make bench``): each prints its figures as a table. Not part of the test suite."""
