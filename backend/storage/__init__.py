"""SQL lives here: the schema, the engine and one repository module per domain.

Repository functions take an `AsyncSession`, flush when they must and never
commit: the service that opened the unit of work owns the transaction.
"""
