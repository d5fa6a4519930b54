"""Benchmarks that print their figures; none of them asserts a timing."""
