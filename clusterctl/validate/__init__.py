"""Node validation: the agent shipped over SSH, the versioned rulesets, and per-node verdicts."""
