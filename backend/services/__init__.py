"""Every rule of the product: authorization, validation, auditing, events.

Services take the acting `Principal` first, open the unit of work, call
storage, and publish events after commit. They import neither FastAPI nor Qt.
"""
