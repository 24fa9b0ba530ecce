"""clusterctl: from racked GPU servers to an accepted, burned-in training cluster."""

__version__ = "0.1.0"
