"""Connection profiles in QSettings, remembered sign-ins in the keychain, and their window."""

from __future__ import annotations

from pathlib import Path

import keyring
import pytest
from keyring.backends import fail
from PySide6.QtWidgets import QApplication, QMessageBox

from console.client.errors import InvalidInput
from console.connections import (
    EMBEDDED_ID,
    NO_KEYCHAIN,
    Embedded,
    Keychain,
    Profile,
    ProfileStore,
    check_profile,
)
from console.connectwindow import ConnectionWindow
from console.widgets.profile import ProfileDialog
from tests.console.conftest import MemoryKeyring, find_window, until


def field_of(error: pytest.ExceptionInfo[InvalidInput]) -> str:
    return str(error.value.details["field"])


def test_profile_rules(tmp_path: Path) -> None:
    ok = check_profile(Profile(name=" Prod ", url="qd.example:8443/"), others=[])
    assert ok.name == "Prod"
    assert ok.url == "https://qd.example:8443"
    assert ok.verify_tls
    assert ok.id
    assert check_profile(Profile(name="Lab", url="http://127.0.0.1:8080"), others=[]).url == (
        "http://127.0.0.1:8080"
    )
    for profile, field in [
        (Profile(name="", url="https://a.example"), "name"),
        (Profile(name="Prod", url="https://b.example"), "name"),  # taken, whatever the case
        (Profile(name="B", url="ftp://b.example"), "url"),
        (Profile(name="B", url="https://"), "url"),
        (Profile(name="B", url="https://b.example:99999"), "url"),
        (Profile(name="B", url="http://b.example"), "url"),  # plain HTTP off this computer
        (Profile(name="B", url="https://b.example", ca_file=str(tmp_path / "no.pem")), "ca_file"),
    ]:
        with pytest.raises(InvalidInput) as caught:
            check_profile(profile, others=[ok])
        assert field_of(caught) == field, profile


def test_profiles_are_stored_and_read_back(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    store = ProfileStore()
    prod = store.save(
        Profile(name="Prod", url="https://qd.example", verify_tls=True, ca_file=str(ca))
    )
    lab = store.save(Profile(name="lab", url="http://localhost:8080", verify_tls=False))
    again = ProfileStore()  # a new QSettings: what a restart reads
    assert again.list() == [lab, prod]  # by name, case-insensitively
    assert again.get(prod.id) == prod
    assert again.get(lab.id) is not None
    assert not lab.verify_tls
    renamed = again.save(Profile(**{**_fields(prod), "name": "Production"}))
    assert renamed.id == prod.id
    assert [p.name for p in ProfileStore().list()] == ["lab", "Production"]
    ProfileStore().remember_username(renamed, "ada")
    stored = ProfileStore().get(prod.id)
    assert stored is not None
    assert stored.username == "ada"
    ProfileStore().delete(renamed)
    assert ProfileStore().list() == [lab]
    assert prod.key != lab.key != Embedded().key == EMBEDDED_ID


def _fields(profile: Profile) -> dict[str, object]:
    return {name: getattr(profile, name) for name in Profile.__dataclass_fields__}


@pytest.mark.asyncio
async def test_the_keychain_remembers_and_forgets(memory_keyring: MemoryKeyring) -> None:
    chain = Keychain()
    assert chain.available() == (True, "")
    assert await chain.load("profile:x") is None
    assert await chain.store("profile:x", "token-1") == ""
    assert await chain.load("profile:x") == "token-1"
    assert memory_keyring.entries == {("Quarterdeck", "profile:x"): "token-1"}
    await chain.forget("profile:x")
    await chain.forget("profile:x")  # forgetting twice is fine
    assert await chain.load("profile:x") is None


@pytest.mark.asyncio
async def test_without_a_keychain_nothing_is_remembered() -> None:
    keyring.set_keyring(fail.Keyring())  # the memory_keyring fixture restores the previous one
    chain = Keychain()
    assert chain.available() == (False, NO_KEYCHAIN)
    assert await chain.store("profile:x", "token") == NO_KEYCHAIN
    assert await chain.load("profile:x") is None
    await chain.forget("profile:x")


@pytest.mark.asyncio
async def test_new_edit_and_delete_a_profile_in_the_window(app: QApplication) -> None:
    window = ConnectionWindow(ProfileStore(), Keychain())
    window.show()
    assert window.list.count() == 1  # only the embedded backend
    assert not window.edit_button.isEnabled()

    window.new_button.click()
    dialog = await until(lambda: find_window(ProfileDialog), what="the profile dialog")
    assert dialog.verify_tls.isChecked()  # TLS verification is on by default
    dialog.name.setText("Production")
    dialog.url.setText("http://qd.example")
    dialog.username.setText("ada")
    dialog.ok_button().click()
    await until(dialog.error_text, what="the URL error")
    assert "https://" in dialog.error_text()
    assert dialog.name.text() == "Production"  # what was typed stays
    assert dialog.url.hasFocus() or not app.focusWidget()

    dialog.url.setText("https://qd.example:8443")
    dialog.ok_button().click()
    await until(lambda: window.list.count() == 2, what="the new profile in the list")
    selected = window.selected()
    assert isinstance(selected, Profile)
    assert selected.name == "Production"
    assert selected.username == "ada"
    assert window.edit_button.isEnabled()

    window.edit_button.click()
    editor = await until(lambda: find_window(ProfileDialog), what="the edit dialog")
    assert editor.url.text() == "https://qd.example:8443"
    editor.name.setText("Prod")
    editor.ok_button().click()
    await until(
        lambda: "Prod\n" in (window.list.currentItem() or window.list).text(), what="rename"
    )

    window.delete_button.click()
    box = await until(lambda: find_window(QMessageBox), what="the confirmation")
    delete = next(b for b in box.buttons() if b.text() == "Delete")
    delete.click()
    await until(lambda: window.list.count() == 1, what="the profile gone")
    assert ProfileStore().list() == []
    window.close()
