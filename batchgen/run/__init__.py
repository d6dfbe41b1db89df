"""The run engine: startup, submission, tracking, fetching, under one scheduler."""
