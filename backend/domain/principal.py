"""Who is acting: every service method takes one of these first."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from backend.domain.errors import Forbidden
from backend.domain.permissions import ROLE_PERMISSIONS, Permission, Role


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated actor with the permissions it holds right now.

    `source` is the client address or "local"; `correlation_id` ties the
    audit entries of one request to its log lines.
    """

    user_id: int | None
    name: str
    role: Role | None
    permissions: frozenset[Permission]
    kind: str = "user"
    """"user", "api_key" or "system"."""
    api_key_id: int | None = None
    session_id: str | None = None
    source: str = "local"
    correlation_id: str | None = None
    extra: dict[str, str] = field(default_factory=dict, compare=False)

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions

    def require(self, permission: Permission) -> None:
        if permission not in self.permissions:
            raise Forbidden(
                f"{self.name} lacks the permission {permission.value}",
                details={"permission": permission.value},
            )

    def with_request(self, *, source: str, correlation_id: str | None) -> Principal:
        return replace(self, source=source, correlation_id=correlation_id)

    @classmethod
    def for_user(
        cls, *, user_id: int, username: str, role: Role, session_id: str | None = None
    ) -> Principal:
        return cls(
            user_id=user_id,
            name=username,
            role=role,
            permissions=ROLE_PERMISSIONS[role],
            session_id=session_id,
        )

    @classmethod
    def system(cls, name: str = "system") -> Principal:
        """The backend itself (jobs, the local collector, the CLI on the server)."""
        return cls(
            user_id=None,
            name=name,
            role=Role.ADMIN,
            permissions=frozenset(Permission),
            kind="system",
        )


ANONYMOUS = Principal(
    user_id=None, name="anonymous", role=None, permissions=frozenset(), kind="anonymous"
)
