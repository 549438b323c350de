"""Request bodies built and checked on the console side, with the server's error.

Both clients build every body with `backend.api.schemas`, so a value the
server would refuse with 422 is refused before leaving the console, with the
same `InvalidInput` and message in both modes (the embedded services do not
know the HTTP bodies' length limits).
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from backend.domain.errors import InvalidInput

M = TypeVar("M", bound=BaseModel)


def build(model: type[M], **fields: Any) -> M:
    """`model(**fields)`, or `InvalidInput` worded as the server words it."""
    try:
        return model(**fields)
    except ValidationError as error:
        errors = [
            {"loc": list(item.get("loc", ())), "msg": item.get("msg", ""), "type": item.get("type")}
            for item in error.errors()
        ]
        first = errors[0]
        where = ".".join(str(part) for part in first["loc"])
        message = f"{where}: {first['msg']}" if where else str(first["msg"])
        raise InvalidInput(message, details={"errors": errors}) from None
