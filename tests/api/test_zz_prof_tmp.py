import cProfile
import pstats
import time

import pytest

from bench.app import QUERY as HOME
from tests.api.test_round_trips import _graph
from tests.conftest import api_with

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_profile(stack):
    async with api_with(stack) as api:
        viewer, _c, _v, _cs = await _graph(api)
        body = {"query": HOME, "variables": {"f": 20}}
        h = {"authorization": f"Bearer {viewer}"}
        for _ in range(50):
            r = await api.client.post("/graphql", json=body, headers=h)
        assert "errors" not in r.json(), r.text
        n = 1500
        prof = cProfile.Profile()
        t0 = time.process_time()
        prof.enable()
        for _ in range(n):
            await api.client.post("/graphql", json=body, headers=h)
        prof.disable()
        cpu = time.process_time() - t0
        print(f"\nCPU per read {cpu * 1000 / n:.3f} ms")
        prof.dump_stats("/tmp/rp-prof/home.prof")
        pstats.Stats(prof).sort_stats("tottime").print_stats(45)
