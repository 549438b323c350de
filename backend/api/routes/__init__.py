"""One router per domain; each handler calls one service method."""
