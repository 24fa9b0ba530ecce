"""Day 2: the drift between the inventory and the fleet (`plan`), and rolling it out (`maintain`)."""
