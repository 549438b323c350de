"""Where the console connects: saved profiles (QSettings) and remembered sign-ins (keychain).

A profile holds nothing secret: name, server URL, last username, TLS
options. It lives in QSettings like the window layout. A remembered
sign-in is a refresh token; it lives only in the OS keychain (keyring), and
is updated whenever the client rotates it. Where the OS has no keychain
(keyring's `fail` backend raises `NoKeyringError`), `Keychain.available`
says so and why, and the console signs in without remembering: never a
plain file.

The rules for a valid profile live here, not in the dialog that edits it,
so the dialog only shows what `check_profile` says.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import ssl
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import keyring
import keyring.errors
from keyring.backends import fail
from PySide6.QtCore import QSettings

from console.client.errors import InvalidInput

if TYPE_CHECKING:
    from backend.config import Settings
    from console.client import Client

log = logging.getLogger(__name__)

KEYCHAIN_SERVICE = "Quarterdeck"
EMBEDDED_ID = "embedded"
PROFILES_GROUP = "profiles"
NO_KEYCHAIN = (
    "This computer has no keychain (no Secret Service, Keychain or Credential Manager "
    "is available), so Quarterdeck cannot remember sign-ins here."
)


@dataclass(frozen=True, slots=True)
class Profile:
    """A saved remote server. `id` is stable across renames; the keychain entry uses it."""

    name: str
    url: str
    username: str = ""
    verify_tls: bool = True
    ca_file: str = ""
    """A PEM bundle to trust instead of the system's CAs (a private CA); empty for the system's."""
    id: str = ""

    @property
    def key(self) -> str:
        """The connection's key: the keychain entry and the window layout use it."""
        return f"profile:{self.id}"


@dataclass(frozen=True, slots=True)
class Embedded:
    """The backend inside this process (SQLite in the user data dir unless configured)."""

    name: str = "Embedded (this computer)"

    @property
    def key(self) -> str:
        return EMBEDDED_ID


Target = Embedded | Profile


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_profile(profile: Profile, *, others: list[Profile]) -> Profile:
    """The profile cleaned up, or `InvalidInput` naming the field (`details["field"]`)."""
    name = profile.name.strip()
    if not name:
        raise InvalidInput("give the profile a name", details={"field": "name"})
    if any(o.name.casefold() == name.casefold() and o.id != profile.id for o in others):
        raise InvalidInput(f"there is already a profile called {name}", details={"field": "name"})
    url = profile.url.strip()
    if url and "://" not in url:
        url = f"https://{url}"
    url = url.rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(
            "the server address is a URL such as https://quarterdeck.example:8443",
            details={"field": "url"},
        )
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise InvalidInput(
            "the port in the address is not valid", details={"field": "url"}
        ) from None
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise InvalidInput(
            "use https:// for another computer; plain http:// is only for this computer, "
            "since the password would cross the network readable",
            details={"field": "url"},
        )
    ca_file = profile.ca_file.strip()
    if ca_file and not Path(ca_file).expanduser().is_file():
        raise InvalidInput(f"there is no file {ca_file}", details={"field": "ca_file"})
    return replace(
        profile,
        name=name,
        url=url,
        username=profile.username.strip(),
        ca_file=str(Path(ca_file).expanduser()) if ca_file else "",
        id=profile.id or uuid.uuid4().hex,
    )


class ProfileStore:
    """Saved profiles in QSettings, under `profiles/<id>/…`."""

    def __init__(self, settings: QSettings | None = None) -> None:
        self._settings = settings if settings is not None else QSettings()

    def list(self) -> list[Profile]:
        """Every saved profile, by name."""
        s = self._settings
        s.beginGroup(PROFILES_GROUP)
        try:
            ids = s.childGroups()
            profiles = [
                Profile(
                    id=pid,
                    name=str(s.value(f"{pid}/name", pid)),
                    url=str(s.value(f"{pid}/url", "")),
                    username=str(s.value(f"{pid}/username", "")),
                    verify_tls=_as_bool(s.value(f"{pid}/verify_tls", True)),
                    ca_file=str(s.value(f"{pid}/ca_file", "")),
                )
                for pid in ids
            ]
        finally:
            s.endGroup()
        return sorted(profiles, key=lambda p: p.name.casefold())

    def get(self, profile_id: str) -> Profile | None:
        return next((p for p in self.list() if p.id == profile_id), None)

    def save(self, profile: Profile) -> Profile:
        """Validate (`check_profile`) and store; returns the stored profile with its id."""
        checked = check_profile(profile, others=self.list())
        s = self._settings
        prefix = f"{PROFILES_GROUP}/{checked.id}"
        s.setValue(f"{prefix}/name", checked.name)
        s.setValue(f"{prefix}/url", checked.url)
        s.setValue(f"{prefix}/username", checked.username)
        s.setValue(f"{prefix}/verify_tls", checked.verify_tls)
        s.setValue(f"{prefix}/ca_file", checked.ca_file)
        s.sync()
        return checked

    def remember_username(self, profile: Profile, username: str) -> Profile:
        """Store the name last signed in with, to prefill the next sign-in."""
        updated = replace(profile, username=username)
        self._settings.setValue(f"{PROFILES_GROUP}/{profile.id}/username", username)
        self._settings.sync()
        return updated

    def delete(self, profile: Profile) -> None:
        self._settings.remove(f"{PROFILES_GROUP}/{profile.id}")
        self._settings.sync()


def _as_bool(value: object) -> bool:
    """QSettings' INI format gives back "true"/"false" strings for booleans."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


class Keychain:
    """Refresh tokens in the OS keychain, one entry per connection key.

    keyring calls may block (D-Bus, an unlock prompt), so they run in a
    worker thread. Every method degrades instead of raising: with no
    keychain, nothing is remembered and `available()` explains why.
    """

    def __init__(self, service: str = KEYCHAIN_SERVICE) -> None:
        self._service = service

    def available(self) -> tuple[bool, str]:
        """(True, "") when sign-ins can be remembered, else (False, why not)."""
        backend = keyring.get_keyring()
        if isinstance(backend, fail.Keyring):
            return False, NO_KEYCHAIN
        return True, ""

    async def load(self, key: str) -> str | None:
        try:
            return await asyncio.to_thread(keyring.get_password, self._service, key)
        except keyring.errors.KeyringError as error:
            log.warning("cannot read the keychain: %s", error)
            return None

    async def store(self, key: str, secret: str) -> str:
        """Save `secret`; returns "" or, when it could not be saved, why (for the UI)."""
        try:
            await asyncio.to_thread(keyring.set_password, self._service, key, secret)
        except keyring.errors.NoKeyringError:
            return NO_KEYCHAIN
        except keyring.errors.KeyringError as error:
            log.warning("cannot write to the keychain: %s", error)
            return f"The keychain refused to store the sign-in: {error}"
        return ""

    async def forget(self, key: str) -> None:
        try:
            await asyncio.to_thread(keyring.delete_password, self._service, key)
        except keyring.errors.PasswordDeleteError:
            pass  # nothing was remembered
        except keyring.errors.KeyringError as error:
            log.warning("cannot remove the sign-in from the keychain: %s", error)


def embedded_settings() -> Settings:
    """The start-up settings (QUARTERDECK_* / TOML) for the core inside the app.

    The embedded mode samples this computer unless QUARTERDECK_COLLECT_LOCAL
    says otherwise. A bad configuration is an `InvalidInput` with pydantic's
    explanation, shown like any other connection error.
    """
    from pydantic import ValidationError  # noqa: PLC0415

    from backend.config import Settings  # noqa: PLC0415

    try:
        settings = Settings()
    except ValidationError as error:
        raise InvalidInput(f"the QUARTERDECK_* configuration is not valid: {error}") from None
    if "QUARTERDECK_COLLECT_LOCAL" not in os.environ:
        settings = settings.model_copy(update={"collect_local": True})
    return settings


class Connector:
    """Opens a `Client` for a target. The app uses the real backends; tests pass settings."""

    def __init__(self, embedded_settings: Settings | None = None) -> None:
        self._embedded_settings = embedded_settings

    async def open(self, target: Target) -> Client:
        """A started client, not yet signed in. Imports the backends only when needed."""
        if isinstance(target, Embedded):
            from console.client.local import LocalClient  # noqa: PLC0415

            settings = self._embedded_settings or embedded_settings()
            return await LocalClient.open(settings, name=target.name)
        from console.client.remote import RemoteClient  # noqa: PLC0415

        try:
            client: Client = RemoteClient(
                target.url,
                name=target.name,
                verify=target.verify_tls,
                ca_file=target.ca_file or None,
            )
        except (ssl.SSLError, OSError) as error:
            # Only the CA file is read here: gone since it was chosen, or not PEM certificates.
            raise InvalidInput(
                f"the profile's CA certificate file {target.ca_file} cannot be used: {error}",
                details={"field": "ca_file"},
            ) from None
        return client
