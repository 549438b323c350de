"""API keys: shown once, listed without the secret, revoked for good."""

from __future__ import annotations

import pytest

from console.client.errors import InvalidInput, NotFound
from tests.contract.conftest import Harness

pytestmark = pytest.mark.asyncio


async def test_api_keys_create_list_revoke(harness: Harness) -> None:
    client = harness.client
    assert await client.list_api_keys() == []
    created = await client.create_api_key(name="node-7", scopes=["metrics:write"])
    assert created.secret.startswith("qd_")
    assert (created.key.name, created.key.scopes, created.key.revoked_at) == (
        "node-7",
        ["metrics:write"],
        None,
    )
    listed = await client.list_api_keys()
    assert listed == [created.key]
    assert created.secret not in listed[0].model_dump_json()

    revoked = await client.revoke_api_key(created.key.id)
    assert revoked.id == created.key.id
    assert revoked.revoked_at is not None
    assert (await client.list_api_keys())[0].revoked_at == revoked.revoked_at

    with pytest.raises(InvalidInput):
        await client.create_api_key(name="bad", scopes=["no:such-scope"])
    with pytest.raises(NotFound):
        await client.revoke_api_key(999_999)
