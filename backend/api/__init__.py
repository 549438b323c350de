"""The HTTP and WebSocket front door. The only package that imports FastAPI."""
