"""The metadata system: catalogue, control plane, placement, splits (issue 4; split_policy.py so far)."""
