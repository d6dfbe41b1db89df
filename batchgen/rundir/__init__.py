"""The run directory on disk: its layout, its lock, landing and verifying result files."""
