"""Workloads that clusterctl ships to nodes: runnable standalone with torchrun."""
