"""All-reduce bus bandwidth between the ranks torchrun started: clusterctl's interconnect check."""
