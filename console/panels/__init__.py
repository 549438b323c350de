"""The main window's pages. Each panel is a standalone QWidget; `registry` plugs them in.

Panels import no `backend` (an import-linter contract): they see only
`console.client`, `console.models`, `console.widgets` and
`console.asyncslots`.
"""
