"""Qt item models fed by the client, for the panels' tables. They import no `backend`."""
