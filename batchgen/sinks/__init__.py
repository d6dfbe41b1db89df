"""Where verified results go: the run directory (local) and an Oxen repository (oxen)."""
