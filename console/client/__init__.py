"""The console's only door to a backend: the `Client` protocol and its errors and types."""

from console.client.protocol import Client, StatusListener

__all__ = ["Client", "StatusListener"]
