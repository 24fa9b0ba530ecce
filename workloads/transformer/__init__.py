"""The Transformer of "Attention Is All You Need" (Vaswani et al., 2017) as a burn-in workload."""
