"""Fuzzing a real server: strategies from botocore's model (shapes.py),
damaged valid requests (mutations.py), raw bodies and bytes (raw.py), the
checks every answer must pass (harness.py), and the runs (run.py,
`python -m tests.fuzz` for `make fuzz`)."""
