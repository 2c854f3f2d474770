"""HTTP routes of the service, one module per resource; shared dependencies in `deps.py`."""
