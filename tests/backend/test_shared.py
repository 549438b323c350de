"""SharedCall: concurrent callers share one call; a cancelled caller leaves nothing behind."""

from __future__ import annotations

import asyncio

import pytest

from backend.services.shared import SharedCall

pytestmark = pytest.mark.asyncio


async def test_callers_meanwhile_share_one_call_and_later_ones_call_again() -> None:
    shared: SharedCall[int] = SharedCall()
    calls = 0

    async def read() -> int:
        nonlocal calls
        calls += 1
        mine = calls
        await asyncio.sleep(0.01)
        return mine

    assert await asyncio.gather(*(shared("k", read) for _ in range(10))) == [1] * 10
    assert await shared("k", read) == 2
    # Another key is another call.
    assert await asyncio.gather(shared("a", read), shared("b", read)) == [3, 4]


async def test_an_error_reaches_every_caller() -> None:
    shared: SharedCall[int] = SharedCall()

    async def fail() -> int:
        await asyncio.sleep(0.01)
        raise RuntimeError("down")

    outcomes = await asyncio.gather(*(shared("k", fail) for _ in range(3)), return_exceptions=True)
    assert [str(outcome) for outcome in outcomes] == ["down"] * 3


async def test_when_the_caller_running_it_is_cancelled_a_waiter_runs_it() -> None:
    shared: SharedCall[str] = SharedCall()
    started: list[str] = []

    async def read(who: str) -> str:
        started.append(who)
        await asyncio.sleep(0.05)
        return who

    first = asyncio.create_task(shared("k", lambda: read("first")))
    await asyncio.sleep(0)
    second = asyncio.create_task(shared("k", lambda: read("second")))
    await asyncio.sleep(0.01)
    first.cancel()
    assert await second == "second"
    assert started == ["first", "second"]
    assert first.cancelled()
    # Nothing was left running: the first read ended with its caller.
    assert len(asyncio.all_tasks()) == 1


async def test_a_cancelled_waiter_leaves_the_call_to_the_others() -> None:
    shared: SharedCall[int] = SharedCall()

    async def read() -> int:
        await asyncio.sleep(0.03)
        return 7

    runner = asyncio.create_task(shared("k", read))
    await asyncio.sleep(0)
    quitter = asyncio.create_task(shared("k", read))
    stayer = asyncio.create_task(shared("k", read))
    await asyncio.sleep(0.01)
    quitter.cancel()
    assert (await runner, await stayer) == (7, 7)
