"""Reusable widgets: status indicators, dialogs, charts. They import no `backend`."""
