"""Author and instructor scripts (run as ``python tools/<name>.py``)."""
