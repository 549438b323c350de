"""Events, cache and rate limits: in memory for one process, Redis for many."""
