"""Deterministic simulation of replication groups (see runner.py)."""
