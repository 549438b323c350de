"""Performance scenarios, runnable as one command: `python -m bench <scenario>`."""
