"""Roles and the permissions they grant, declared once as data.

Services check permissions, never roles, so a new role is one line here.
"""

from __future__ import annotations

from enum import StrEnum


class Permission(StrEnum):
    USERS_READ = "users:read"
    USERS_WRITE = "users:write"
    API_KEYS_OWN = "api_keys:own"
    """Create, list and revoke one's own API keys."""
    API_KEYS_ALL = "api_keys:all"
    """List and revoke anybody's API keys."""
    SETTINGS_READ = "settings:read"
    SETTINGS_WRITE = "settings:write"
    """Change non-secret settings."""
    SETTINGS_SECRETS = "settings:secrets"
    """See and change secret settings, import and export with secrets."""
    HOSTS_READ = "hosts:read"
    HOSTS_WRITE = "hosts:write"
    METRICS_READ = "metrics:read"
    METRICS_WRITE = "metrics:write"
    ALERTS_READ = "alerts:read"
    ALERTS_ACK = "alerts:ack"
    AUDIT_READ = "audit:read"


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    VIEWER = "viewer"


_READ = frozenset(
    {
        Permission.USERS_READ,
        Permission.SETTINGS_READ,
        Permission.HOSTS_READ,
        Permission.METRICS_READ,
        Permission.ALERTS_READ,
    }
)

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.OPERATOR: _READ
    | {
        Permission.AUDIT_READ,
        Permission.METRICS_WRITE,
        Permission.ALERTS_ACK,
        Permission.SETTINGS_WRITE,
        Permission.API_KEYS_OWN,
    },
    Role.VIEWER: _READ,
}

API_KEY_SCOPES: frozenset[Permission] = frozenset(Permission)
"""Any permission may be a key's scope; the owner's role still bounds it."""
