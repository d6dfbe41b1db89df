"""Delivery to an Oxen repository: batches committed through a workspace, each sent once."""
