"""What people read of a run: the report, results files, listings, unverified results."""
