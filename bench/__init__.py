"""Reproducible benchmarks for Stackwatch (see ``bench/README.md``)."""
