"""Day 2: periodic check rounds, every node's figures over time, regressions against peers and the
node's own history, and early-warning scores."""
