"""Reading the local host's metrics, shared by the embedded mode and the agent."""
