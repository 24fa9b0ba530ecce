"""Burn-in: launch the workload on the fleet, turn what every rank reports into per-node verdicts."""
