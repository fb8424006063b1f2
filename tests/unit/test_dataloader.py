"""The request loaders' DataLoader holds to Strawberry's DataLoader semantics."""

from __future__ import annotations

import asyncio

import pytest
from strawberry.dataloader import DataLoader as StrawberryDataLoader

from loaders import DataLoader

pytestmark = pytest.mark.parametrize("loader_class", [DataLoader, StrawberryDataLoader],
                                     ids=["chirp", "strawberry"])


class Boom(Exception):
    pass


def recording(answer=lambda keys: [f"v{k}" for k in keys]):
    calls: list[list] = []

    async def load(keys: list) -> list:
        calls.append(list(keys))
        await asyncio.sleep(0)
        return answer(keys)

    return calls, load


async def test_one_batch_per_loop_iteration_and_a_cache(loader_class):
    calls, fn = recording()
    loader = loader_class(fn)
    assert await asyncio.gather(loader.load(1), loader.load(2), loader.load(1)) == \
        ["v1", "v2", "v1"]
    assert await loader.load_many([3, 1, 3, 4]) == ["v3", "v1", "v3", "v4"]
    assert await loader.load(2) == "v2"
    assert calls == [[1, 2], [3, 4]]


async def test_a_failing_batch_fails_each_key_and_stays_failed(loader_class):
    error = Boom("down")
    calls, fn = recording(lambda keys: (_ for _ in ()).throw(error))
    loader = loader_class(fn)
    results = await asyncio.gather(loader.load(1), loader.load(2), return_exceptions=True)
    assert results == [error, error]
    with pytest.raises(Boom):
        await loader.load(1)
    assert calls == [[1, 2]]


async def test_an_exception_value_fails_only_its_key(loader_class):
    error = Boom("no 2")
    _, fn = recording(lambda keys: [error if k == 2 else k * 10 for k in keys])
    loader = loader_class(fn)
    results = await asyncio.gather(loader.load(1), loader.load(2), loader.load(3),
                                   return_exceptions=True)
    assert results == [10, error, 30]
    with pytest.raises(Boom):
        await loader.load_many([1, 2])


async def test_a_wrong_number_of_values_fails_every_key(loader_class):
    _, fn = recording(lambda keys: keys[:-1])
    loader = loader_class(fn)
    results = await asyncio.gather(loader.load(1), loader.load(2), return_exceptions=True)
    assert all(isinstance(r, Exception) for r in results)
    assert "2" in str(results[0]) and "1" in str(results[0])


async def test_a_cancelled_waiter_is_skipped_and_its_key_loads_again(loader_class):
    calls, fn = recording()
    loader = loader_class(fn)
    first, second = loader.load(1), loader.load(2)
    first.cancel()
    assert await second == "v2"
    assert await loader.load(1) == "v1"
    assert calls == [[1, 2], [1]]


async def test_cancelled_while_the_batch_runs(loader_class):
    started = asyncio.Event()
    release = asyncio.Event()

    async def fn(keys):
        started.set()
        await release.wait()
        return [f"v{k}" for k in keys]

    loader = loader_class(fn)
    first, second = loader.load(1), loader.load(2)
    await started.wait()
    first.cancel()
    release.set()
    assert await second == "v2"
    assert first.cancelled()


async def test_no_call_when_every_waiter_is_gone(loader_class):
    calls, fn = recording()
    loader = loader_class(fn)
    futures = [loader.load(k) for k in (1, 2)]
    for f in futures:
        f.cancel()
    await asyncio.sleep(0.01)
    assert calls == []
