"""The wire: every request to the Oxen API, the event stream, downloads."""
