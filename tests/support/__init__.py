"""Real servers that tests start on loopback: sshd hosts (and later Slurm)."""
