"""What tests share: the real servers they start on loopback (PostgreSQL, sshd hosts, Slurm, the lab,
uvicorn), the CLI runner, free ports. One module per kind, so that a helper is written once."""
