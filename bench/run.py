"""The benchmark: `python -m bench.run` (`make bench`), `--quick` (`make bench-quick`);
`--redis cluster`: timelines on one Valkey beside a Valkey cluster (bench/cluster.py).

Starts its own PostgreSQL and Valkey (deploy/local, in a temporary directory), seeds a
synthetic social graph with a heavy-tailed follower distribution (bench/graph.py), then
runs on loopback, each scenario bounded in time:

1. homeTimeline(first: 20) with author fields over HTTP GraphQL, one API process:
   saturation (closed loop) and latency p50/p99/p99.9 at fixed offered rates (open loop,
   measured from the intended send time: bench/loadgen.py).
2. Floors and the alternative, same run: the same page as the same JSON from a plain
   Starlette route (bench/app.py), assembled in-process without HTTP (bench/inprocess.py),
   and pulled from PostgreSQL at read time (fan-out-on-read) for viewers following ~200.
3. Fan-out deliveries/s of one worker process for authors with 1k, 10k and 100k
   followers, against raw pipelined Redis writes of the same entries.
4. Post-to-visible latency (post -> in a follower's homeTimeline) for a 10k-follower
   author while scenario 1's load runs at 70 % of saturation.
5. homeTimeline latency for viewers following 0, 10 and 50 celebrities.
6. Memory: bytes per cached timeline entry and per cached timeline.
7. Cold storage (bench/archive.py): archive throughput, and the same userTimeline pages
   from the archive beside the live store.

Writes bench/results/latest.json, latest.md and latest.png (latency against offered
load). The machine's load (`uptime`) is recorded before and after every scenario: on a
shared machine, compare ratios measured in the same run rather than absolute numbers
across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import psutil
from prometheus_client.parser import text_string_to_metric_families

from bench import graph as graphs
from bench.app import QUERY
from bench.loadgen import build_requests, write_requests
from storage import keys

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
BODY = json.dumps({"query": QUERY, "variables": {"f": 20}}).encode()
NOT_A_CELEBRITY = str(10**9)


@dataclass
class Plan:
    """Sizes and durations (seconds) of one run."""

    spec: graphs.GraphSpec
    viewers: int  # viewers the read load draws from
    saturation_s: float
    rate_s: float
    fractions: tuple[float, ...]
    floor_s: float
    pull_s: float
    visible_s: float
    visible_followers: int
    visible_every_s: float
    celeb_s: float
    celeb_viewers: int
    fanout_sizes: tuple[int, ...]
    fanout_runs: int
    warm_s: float
    # Open loop uses as many connections as the closed loop: requests beyond them wait
    # in the generator's queue (their wait is counted), as behind a proxy that limits
    # concurrency per backend, instead of all piling into the server at once.
    connections: int = 32
    open_connections: int = 32
    archive_authors: tuple[int, int] = (200, 300)  # authors x old tweets each

    @classmethod
    def full(cls) -> Plan:
        return cls(graphs.GraphSpec.full(), viewers=40_000, saturation_s=20, rate_s=20,
                   fractions=(0.1, 0.3, 0.5, 0.7, 0.85, 1.0), floor_s=15, pull_s=15,
                   visible_s=60, visible_followers=10_000, visible_every_s=1.5, celeb_s=12,
                   celeb_viewers=40, fanout_sizes=(1_000, 10_000, 100_000), fanout_runs=3,
                   warm_s=120)

    @classmethod
    def quick(cls) -> Plan:
        # 2,000 viewers: few enough that the warm-up reads each once on a loaded 2-core
        # machine, so saturation measures the steady state it is meant to.
        return cls(graphs.GraphSpec.quick(), viewers=2_000, saturation_s=5, rate_s=4,
                   fractions=(0.3, 0.7, 1.0), floor_s=4, pull_s=4, visible_s=8,
                   visible_followers=1_000, visible_every_s=0.4, celeb_s=3, celeb_viewers=20,
                   fanout_sizes=(1_000, 10_000, 100_000), fanout_runs=1, warm_s=90,
                   archive_authors=(50, 100))


# The API's counters of reads that left the cached path: a hybrid run whose pages came
# from the store or from rebuilt timelines would not measure the hybrid design.
COUNTERS = ("chirp_timeline_store_pages_total", "chirp_timeline_rebuilds_total",
            "chirp_degraded_reads_total", "chirp_bench_postgres_queries_total")
PG_QUERIES = "chirp_bench_postgres_queries_total"


async def read_counters(port: int) -> dict[str, float]:
    """The COUNTERS of the API on `port`, summed over their labels."""
    async with httpx.AsyncClient(timeout=10) as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in COUNTERS:
                out[sample.name] = out.get(sample.name, 0) + sample.value
    return out


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    return {
        "cores": os.cpu_count(), "cpu_model": model or platform.processor(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(), "platform": platform.platform(),
        "git_commit": commit, "git_dirty": bool(dirty),
        "uptime_load_before": load_average(),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


class Cpu:
    """CPU seconds used by the processes the benchmark cares about."""

    def __init__(self, postgres_pid: int, valkey_pid: int) -> None:
        self.pg = psutil.Process(postgres_pid)
        self.valkey = psutil.Process(valkey_pid)
        self.named: dict[str, psutil.Process] = {}

    def watch(self, name: str, pid: int) -> None:
        self.named[name] = psutil.Process(pid)

    def snapshot(self) -> dict[str, float]:
        t = self.pg.cpu_times()
        pg = t.user + t.system + t.children_user + t.children_system
        for c in self.pg.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                ct = c.cpu_times()
                pg += ct.user + ct.system
        out = {"postgres": pg}
        vt = self.valkey.cpu_times()
        out["valkey"] = vt.user + vt.system
        for name, p in self.named.items():
            with contextlib.suppress(psutil.Error):
                pt = p.cpu_times()
                out[name] = pt.user + pt.system
        return out


class Bench:
    def __init__(self, plan: Plan, tmp: Path, stack, profile: bool) -> None:
        self.plan = plan
        self.tmp = tmp
        self.stack = stack
        self.profile = profile
        self.env = dict(
            os.environ, CHIRP_POSTGRES_URL=stack.postgres_url, CHIRP_REDIS_URL=stack.redis_url,
            CHIRP_DATA_DIR=str(tmp), CHIRP_JWT_SECRET="b" * 48, CHIRP_ENV="test",
            CHIRP_CELEBRITY_THRESHOLD=str(plan.spec.threshold),
            CHIRP_TWEET_RATE_PER_HOUR="1000000", CHIRP_WORKER_CLAIM_IDLE_MS="60000",
            # The archive scenario runs the archive itself, last.
            CHIRP_ARCHIVE_INTERVAL_HOURS="0",
        )
        self.cpu = Cpu(stack.postgres.process.pid, stack.valkey.process.pid)
        self.procs: list[subprocess.Popen] = []
        self.results: dict = {}
        self.port = 0

    # ------------------------------------------------------------------ processes

    def spawn(self, args: list[str], env: dict | None = None, name: str | None = None,
              quiet: bool = False) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, *args], cwd=ROOT, env=env or self.env,
            stdout=subprocess.DEVNULL if quiet else None,
            stderr=subprocess.DEVNULL if quiet else None,
        )
        self.procs.append(proc)
        if name:
            self.cpu.watch(name, proc.pid)
        return proc

    def stop(self, proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in list(self.procs):
            self.stop(proc)

    async def start_api(self, name: str, extra: dict | None = None) -> tuple[subprocess.Popen,
                                                                              int]:
        from deploy.local.ports import free_port

        port = free_port()
        env = dict(self.env, **(extra or {}))
        proc = self.spawn(["-m", "uvicorn", "bench.app:create_app", "--factory", "--port",
                           str(port), "--no-access-log", "--log-level", "warning"],
                          env=env, name=name)
        async with httpx.AsyncClient() as client:
            for _ in range(300):
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                        return proc, port
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{name} did not start")

    # ------------------------------------------------------------------ load

    def requests_file(self, name: str, tokens: list[str], port: int, kind: str = "post",
                      path: str = "/graphql") -> Path:
        path_out = self.tmp / f"{name}.bin"
        write_requests(path_out, build_requests(kind, port, tokens, BODY, path))
        return path_out

    async def load(self, port: int, reqs: Path, rate: float, seconds: float,
                   connections: int | None = None, watch: str = "api",
                   once: bool = False) -> dict:
        """One load-generator run (bench/loadgen.py in its own process), with the CPU the
        API, PostgreSQL and Valkey spent per request meanwhile. `once`: a closed loop that
        sends each request once (at most `seconds`), to warm the caches."""
        connections = connections or (self.plan.connections if rate <= 0
                                      else self.plan.open_connections)
        out = self.tmp / f"load-{time.monotonic_ns()}.npz"
        before_counts = await read_counters(port)
        before_cpu, load_before = self.cpu.snapshot(), load_average()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.loadgen", "--port", str(port), "--requests",
            str(reqs), "--rate", str(rate), "--seconds", str(seconds), "--connections",
            str(connections), "--out", str(out), *(["--once"] if once else []), cwd=ROOT,
            env=self.env)
        if await proc.wait() != 0:
            raise RuntimeError("load generator failed")
        after_cpu = self.cpu.snapshot()
        after_counts = await read_counters(port)
        meta = json.loads(out.with_suffix(".json").read_text())
        data = np.load(out)
        lat, ends, lag = data["latencies"] * 1000, data["ends"], data["lag"] * 1000
        if rate <= 0:
            achieved = float((ends <= seconds).sum() / seconds)
        else:
            achieved = float(len(ends) / max(ends.max(), seconds)) if len(ends) else 0.0
        n = max(meta["completed"], 1)
        cpu = {f"{k}_cpu_ms_per_request": round((after_cpu[k] - before_cpu.get(k, 0)) * 1000 / n,
                                                3)
               for k in (watch, "postgres", "valkey") if k in after_cpu}

        def pct(p: float) -> float:
            return round(float(np.percentile(lat, p)), 2) if len(lat) else float("nan")

        return {
            "mode": meta["mode"], "offered_rps": rate, "achieved_rps": round(achieved, 1),
            "seconds": seconds, "connections": connections, "completed": meta["completed"],
            "errors": meta["errors"], "timeouts": meta["timeouts"],
            "p50_ms": pct(50), "p90_ms": pct(90), "p99_ms": pct(99), "p999_ms": pct(99.9),
            "max_ms": round(float(lat.max()), 2) if len(lat) else float("nan"),
            "generator_lag_p99_ms": round(float(np.percentile(lag, 99)), 2) if len(lag) else 0,
            "generator_cpu_ms_per_request": round(meta["client_cpu_s"] * 1000 / n, 3),
            **cpu, "uptime_load": [load_before, load_average()],
            # Reads not served from the caches alone (bench/run.py: read_counters).
            "read_path_counters": {k: after_counts.get(k, 0) - before_counts.get(k, 0)
                                   for k in COUNTERS},
            "postgres_queries_per_request": round(
                (after_counts.get(PG_QUERIES, 0) - before_counts.get(PG_QUERIES, 0)) / n, 4),
        }

    def summary(self, name: str, r: dict) -> None:
        log(f"  {name}: {r['achieved_rps']:.0f} req/s (offered {r['offered_rps'] or 'max'}), "
            f"p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, p99.9 {r['p999_ms']} ms, "
            f"errors {r['errors']}, timeouts {r['timeouts']}, "
            f"API CPU {r.get('api_cpu_ms_per_request', r.get('api_pull_cpu_ms_per_request'))}"
            f" ms/req, load {r['uptime_load'][1]}")

    # ------------------------------------------------------------------ the run

    async def run(self) -> dict:
        from runtime.container import open_services
        from runtime.settings import load

        p = self.plan
        res = self.results
        res["machine"] = machine()
        res["plan"] = {k: v for k, v in vars(p).items() if k != "spec"}
        svc = await open_services(load(self.env))
        try:
            # Timelines are a cache: the bench's Valkey keeps no append-only file (its
            # rewrites would fork and copy the dataset in the middle of a measurement).
            await svc.redis.config_set("appendonly", "no")
            log(f"generating the graph ({p.spec.users:,} users)")
            g = graphs.generate(p.spec)
            res["graph"] = g.stats()
            log(f"  {json.dumps(res['graph'])}")
            log("seeding PostgreSQL and Valkey")
            res["seeding_s"] = await graphs.seed(svc, g, log)
            log(f"  {res['seeding_s']}")
            await self.prepare(svc, g)
            worker = self.spawn(["-m", "workers.fanout"], name="worker", quiet=True)
            api, self.port = await self.start_api("api")
            await self.scenario_home(svc)
            await self.scenario_floors(svc)
            await self.scenario_visible(svc)
            await self.scenario_celebrities()
            await self.scenario_memory(svc, g)
            self.stop(api)
            self.stop(worker)
            await self.scenario_fanout(svc, g)
            if (ROOT / "storage" / "archive.py").exists():  # older revisions have none
                await self.scenario_archive(svc)
        finally:
            self.stop_all()
            await svc.close()
        res["machine"]["uptime_load_after"] = load_average()
        res["machine"]["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        return res

    async def scenario_archive(self, svc) -> None:
        """Last: it adds old tweets to the graph's authors' store."""
        from bench import archive

        log("scenario 7: cold storage")
        authors, per_author = self.plan.archive_authors
        out = await archive.measure(svc, authors, per_author, log=log)
        self.results["archive"] = out
        self.results["archive_tweets_per_s"] = out["archive_tweets_per_s"]
        self.results["archive_vs_live_page_ratio"] = out["archive_vs_live_page_ratio"]
        self.results["archive_vs_live_store_page_ratio"] = out["archive_vs_live_store_page_ratio"]

    async def prepare(self, svc, g: graphs.Graph) -> None:
        """Viewers and extra accounts the scenarios need, and their tokens."""
        p = self.plan
        rng = np.random.default_rng(11)
        n = len(g.ids)
        token = svc.accounts.token_for

        class U:
            def __init__(self, id_: int) -> None:
                self.id = id_

        viewers = rng.choice(n, size=min(p.viewers, n), replace=False)
        self.tokens = [token(U(int(g.ids[i]))) for i in viewers]
        # Viewers following ~200 accounts, for the pull comparison.
        f = g.following
        near = np.flatnonzero((f >= 180) & (f <= 220))
        # As many as the warm-up reads once: the hybrid is measured with its caches warm.
        self.tokens_200 = [token(U(int(g.ids[i])))
                           for i in rng.permutation(near)[:min(4000, p.viewers // 5)]]
        self.results["pull_viewers_following_median"] = float(np.median(f[near]))
        # Viewers following exactly 150 ordinary accounts and 0, 10 or 50 celebrities.
        celebs = np.flatnonzero(g.celebrity)
        plain = np.flatnonzero(~g.celebrity)
        self.celeb_tokens: dict[int, list[str]] = {}
        for c in (0, 10, 50):
            c_used = min(c, len(celebs))
            sets = [np.concatenate([rng.choice(plain, 150, replace=False),
                                    rng.choice(celebs, c_used, replace=False)])
                    for _ in range(p.celeb_viewers)]
            ids = await graphs.new_viewers(svc, g, sets)
            self.celeb_tokens[c_used] = [token(U(i)) for i in ids]
        # The 10k-follower author of scenario 4 (under the celebrity threshold: pushed).
        self.visible_followers = rng.choice(n, size=p.visible_followers, replace=False)
        self.visible_author = await graphs.new_author(svc, g, self.visible_followers,
                                                      "visible_author")
        self.visible_token = token(U(self.visible_author))
        # Followers are paged newest follow first: the first one followed is pushed last.
        self.watch_tokens = {
            "pushed_last": token(U(int(g.ids[self.visible_followers[0]]))),
            "pushed_first": token(U(int(g.ids[self.visible_followers[-1]]))),
        }

    # ------------------------------------------------------------------ scenario 1

    async def scenario_home(self, svc) -> None:
        p = self.plan
        log("scenario 1: homeTimeline over HTTP GraphQL")
        self.reqs = self.requests_file("graphql", self.tokens, self.port)
        # Warm: every viewer read once (PostgreSQL's buffers, the API's pools, prepared
        # statements and read caches), so the measured runs see the steady state.
        warm = await self.load(self.port, self.reqs, 0, p.warm_s, once=True)
        log(f"  warm-up: {warm['completed']:,} reads at {warm['achieved_rps']:.0f} req/s")
        self.results["warm_viewers_read_fraction"] = round(
            warm["completed"] / len(self.tokens), 3)
        sat = await self.load(self.port, self.reqs, 0, p.saturation_s)
        self.summary("saturation (closed loop)", sat)
        # The floor: a trivial route of the same process, same generator and connections.
        trivial = self.requests_file("healthz", self.tokens[:1000], self.port, "get",
                                     "/healthz")
        floor = await self.load(self.port, trivial, 0, p.saturation_s)
        self.summary("HTTP floor (GET /healthz), saturation", floor)
        self.results["http_floor"] = floor
        self.results["http_floor_rps"] = floor["achieved_rps"]
        self.results["home_rps_vs_http_floor_ratio"] = round(
            sat["achieved_rps"] / floor["achieved_rps"], 3)
        # Cached reads: viewers whose pages this process has just read (the warm-up covers
        # every viewer only when it fits in warm_s), read again.
        cached_reqs = self.requests_file("cached", self.tokens[:500], self.port)
        await self.load(self.port, cached_reqs, 0, p.warm_s, once=True)
        await asyncio.sleep(0.5)  # the warm-up's activity marks, written in batches 50 ms on
        cached = await self.load(self.port, cached_reqs, 0, p.saturation_s)
        self.summary("cached viewers (500, each read before), saturation", cached)
        self.results["home_cached"] = cached
        self.results["postgres_queries_per_cached_home_read"] = cached[
            "postgres_queries_per_request"]
        self.results["home_cached_rps_vs_http_floor_ratio"] = round(
            cached["achieved_rps"] / floor["achieved_rps"], 3)
        if self.profile:
            await self.profile_api("graphql")
        self.sat = sat["achieved_rps"]
        points = []
        for frac in p.fractions:
            r = await self.load(self.port, self.reqs, round(frac * self.sat, 1), p.rate_s)
            r["fraction_of_saturation"] = frac
            self.summary(f"{frac:.0%} of saturation", r)
            points.append(r)
        at70 = min(points, key=lambda r: abs(r["fraction_of_saturation"] - 0.7))
        self.results["home"] = {"saturation": sat, "open_loop": points}
        self.results["home_rps_saturation"] = sat["achieved_rps"]
        self.results["home_rps_open_loop_max"] = max(r["achieved_rps"] for r in points)
        self.results["home_p99_ms_at_70pct"] = at70["p99_ms"]
        self.results["home_p50_ms_at_70pct"] = at70["p50_ms"]
        self.results["home_p999_ms_at_70pct"] = at70["p999_ms"]
        self.results["home_api_cpu_ms_per_request"] = sat.get("api_cpu_ms_per_request")

    async def profile_api(self, name: str) -> None:
        """py-spy on the API process under closed-loop load (where the time goes)."""
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        out = RESULTS / f"profile-{name}.txt"
        api_pid = self.cpu.named["api"].pid
        proc = await asyncio.create_subprocess_exec(
            spy, "record", "-p", str(api_pid), "-d", "10", "-r", "250", "-f", "raw", "-o",
            str(out), "--nonblocking", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        await self.load(self.port, self.reqs, 0, 11)
        await proc.wait()
        log(f"  profile: {out}")

    # ------------------------------------------------------------------ scenario 2

    async def scenario_floors(self, svc) -> None:
        p = self.plan
        res = self.results
        log("scenario 2: floors (plain route, in-process) and pure pull")
        await self.check_same_json()
        plain_reqs = self.requests_file("plain", self.tokens, self.port, "get",
                                        "/bench/home?first=20")
        await self.load(self.port, plain_reqs, 0, 2)
        plain_sat = await self.load(self.port, plain_reqs, 0, p.floor_s)
        self.summary("plain route, saturation", plain_sat)
        rate70 = round(0.7 * self.sat, 1)
        plain70 = await self.load(self.port, plain_reqs, rate70, p.floor_s)
        self.summary("plain route at GraphQL's 70 % rate", plain70)
        tokens_file = self.tmp / "tokens.txt"
        tokens_file.write_text("\n".join(self.tokens))
        inproc = {}
        for kind in ("plain", "graphql"):
            before = load_average()
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.inprocess", "--kind", kind, "--tokens",
                str(tokens_file), "--seconds", str(p.floor_s), "--concurrency",
                str(p.connections), cwd=ROOT, env=self.env, stdout=subprocess.PIPE)
            out, _ = await proc.communicate()
            if proc.returncode:
                raise RuntimeError(f"in-process {kind} failed")
            inproc[kind] = json.loads(out.decode().strip().splitlines()[-1])
            inproc[kind]["uptime_load"] = [before, load_average()]
            log(f"  in-process {kind}: {inproc[kind]['rps']} pages/s, "
                f"p99 {inproc[kind]['p99_ms']} ms, CPU {inproc[kind]['cpu_ms_per_page']} ms/page")
        # Pure pull against hybrid, for viewers following ~200 accounts.
        hybrid_reqs = self.requests_file("graphql200", self.tokens_200, self.port)
        await self.load(self.port, hybrid_reqs, 0, p.warm_s, once=True)
        hybrid200_sat = await self.load(self.port, hybrid_reqs, 0, p.pull_s)
        self.summary("hybrid, viewers following ~200, saturation", hybrid200_sat)
        pull_api, pull_port = await self.start_api("api_pull", {"BENCH_FEED": "pull"})
        try:
            pull_reqs = self.requests_file("pull200", self.tokens_200, pull_port)
            await self.check_same_json(pull_port, self.tokens_200[:20])
            await self.load(pull_port, pull_reqs, 0, 2, watch="api_pull")
            pull_sat = await self.load(pull_port, pull_reqs, 0, p.pull_s, watch="api_pull")
            self.summary("pull, saturation", pull_sat)
            same_rate = round(0.7 * pull_sat["achieved_rps"], 1)
            pull_at = await self.load(pull_port, pull_reqs, same_rate, p.pull_s,
                                      watch="api_pull")
            self.summary("pull at 70 % of its saturation", pull_at)
            hybrid_rate = round(0.7 * hybrid200_sat["achieved_rps"], 1)
            pull_at_hybrid70 = await self.load(pull_port, pull_reqs, hybrid_rate, p.pull_s,
                                               watch="api_pull")
            self.summary("pull at 70 % of hybrid's saturation", pull_at_hybrid70)
        finally:
            self.stop(pull_api)
        hybrid_at = await self.load(self.port, hybrid_reqs, same_rate, p.pull_s)
        self.summary("hybrid at pull's 70 % rate", hybrid_at)
        hybrid_at70 = await self.load(self.port, hybrid_reqs, hybrid_rate, p.pull_s)
        self.summary("hybrid at its 70 % rate", hybrid_at70)
        res["floors"] = {
            "plain_route_saturation": plain_sat, "plain_route_at_graphql_70pct": plain70,
            "in_process": inproc,
            "viewers_following_200": {
                "hybrid_saturation": hybrid200_sat, "pull_saturation": pull_sat,
                "pull_at_70pct_of_pull": pull_at, "hybrid_at_70pct_of_pull": hybrid_at,
                "pull_at_70pct_of_hybrid": pull_at_hybrid70,
                "hybrid_at_70pct_of_hybrid": hybrid_at70,
            },
        }
        g_rps = self.sat
        res["graphql_vs_plain_route_rps_ratio"] = round(g_rps / plain_sat["achieved_rps"], 3)
        res["plain_route_rps_saturation"] = plain_sat["achieved_rps"]
        res["inprocess_plain_vs_graphql_http_rps_ratio"] = round(inproc["plain"]["rps"] / g_rps, 3)
        res["inprocess_graphql_vs_graphql_http_rps_ratio"] = round(
            inproc["graphql"]["rps"] / g_rps, 3)
        res["plain_route_vs_graphql_p99_at_70pct_ratio"] = round(
            plain70["p99_ms"] / res["home_p99_ms_at_70pct"], 3)
        res["pull_vs_hybrid_p99_ratio"] = round(pull_at["p99_ms"] / hybrid_at["p99_ms"], 2)
        res["pull_vs_hybrid_p99_ratio_at_hybrid_70pct"] = round(
            pull_at_hybrid70["p99_ms"] / hybrid_at70["p99_ms"], 2)
        # Hybrid reads cost PostgreSQL a few clock ticks (10 ms) per run, as much from its
        # background work as from the reads: the three hybrid runs are pooled for more
        # ticks, and a total of none counts as one (the ratio is then a lower bound).
        hybrid_runs = (hybrid200_sat, hybrid_at, hybrid_at70)
        hybrid_n = max(sum(r["completed"] for r in hybrid_runs), 1)
        hybrid_pg = max(sum(r["postgres_cpu_ms_per_request"] * r["completed"]
                            for r in hybrid_runs) / hybrid_n, 10 / hybrid_n)
        res["pull_vs_hybrid_postgres_cpu_ratio"] = round(
            pull_at["postgres_cpu_ms_per_request"] / hybrid_pg, 2)
        res["pull_vs_hybrid_rps_ratio"] = round(
            pull_sat["achieved_rps"] / hybrid200_sat["achieved_rps"], 3)
        res["pull_vs_graphql_rps_ratio"] = round(pull_sat["achieved_rps"] / g_rps, 3)

    async def check_same_json(self, port: int | None = None,
                              tokens: list[str] | None = None) -> None:
        """The plain route (and the pull API) answer the same `data` as GraphQL, byte for
        byte once encoded; GraphQL's extensions (the query's cost) are not the page's."""
        tokens = tokens or self.tokens[:20]
        different = 0
        async with httpx.AsyncClient() as client:
            for t in tokens:
                h = {"authorization": f"Bearer {t}"}
                gql = await client.post(f"http://127.0.0.1:{self.port}/graphql", content=BODY,
                                        headers={**h, "content-type": "application/json"})
                if port is None:
                    other = await client.get(f"http://127.0.0.1:{self.port}/bench/home",
                                             headers=h)
                else:
                    other = await client.post(f"http://127.0.0.1:{port}/graphql", content=BODY,
                                              headers={**h, "content-type": "application/json"})
                if _data(gql.content) != _data(other.content) or b'"errors"' in gql.content:
                    different += 1
                    log(f"  DIFFERENT PAGES:\n{gql.content[:300]!r}\n{other.content[:300]!r}")
        key = "same_json_pull" if port else "same_json_plain_route"
        self.results[key] = (f"identical data for {len(tokens)} viewers" if not different
                             else f"{different} of {len(tokens)} viewers got different data")

    # ------------------------------------------------------------------ scenario 4

    async def scenario_visible(self, svc) -> None:
        p = self.plan
        log(f"scenario 4: post-to-visible, {p.visible_followers:,}-follower author, "
            f"under 70 % load")
        url = f"http://127.0.0.1:{self.port}/graphql"
        post_q = 'mutation($t:String!){postTweet(text:$t){id}}'
        poll_q = "query{homeTimeline(first:5){edges{node{id}}}}"
        times: dict[str, list[float]] = {k: [] for k in self.watch_tokens}
        missed = 0
        posts = 0

        async def measure(client: httpx.AsyncClient) -> None:
            nonlocal missed, posts
            await asyncio.sleep(1.0)  # the load is up
            deadline = time.perf_counter() + p.visible_s - 2
            n = 0
            while time.perf_counter() < deadline:
                n += 1
                t0 = time.perf_counter()
                r = await client.post(url, json={"query": post_q,
                                                 "variables": {"t": f"visible {n}"}},
                                      headers={"authorization": f"Bearer {self.visible_token}"})
                tid = r.json()["data"]["postTweet"]["id"]
                posts += 1
                pending = dict(self.watch_tokens)
                while pending and time.perf_counter() - t0 < 10:
                    for name, tok in list(pending.items()):
                        got = await client.post(url, json={"query": poll_q},
                                                headers={"authorization": f"Bearer {tok}"})
                        ids = [e["node"]["id"] for e in got.json()["data"]["homeTimeline"]
                               ["edges"]]
                        if tid in ids:
                            times[name].append(time.perf_counter() - t0)
                            del pending[name]
                    await asyncio.sleep(0.01)
                missed += len(pending)
                await asyncio.sleep(max(0.0, p.visible_every_s - (time.perf_counter() - t0)))

        rate = round(0.7 * self.sat, 1)
        async with httpx.AsyncClient(timeout=10) as client:
            load_task = asyncio.create_task(self.load(self.port, self.reqs, rate, p.visible_s))
            await measure(client)
            reads = await load_task
        self.summary("reads meanwhile", reads)
        out = {"posts": posts, "not_visible_within_10s": missed,
               "poll_interval_ms": "~10 + a read (two followers polled in turn)",
               "reads_meanwhile": reads}
        for name, ts in times.items():
            a = np.array(ts) * 1000
            out[name] = {"p50_ms": round(float(np.percentile(a, 50)), 1),
                         "p99_ms": round(float(np.percentile(a, 99)), 1),
                         "max_ms": round(float(a.max()), 1), "n": len(a)} if len(a) else {}
            log(f"  visible to the follower pushed {name.split('_')[1]}: {out[name]}")
        self.results["post_to_visible"] = out
        last = out["pushed_last"]
        self.results["post_to_visible_p50_ms"] = last.get("p50_ms")
        self.results["post_to_visible_p99_ms"] = last.get("p99_ms")

    # ------------------------------------------------------------------ scenario 5

    async def scenario_celebrities(self) -> None:
        p = self.plan
        log("scenario 5: celebrity read cost")
        rate = round(min(0.3 * self.sat, 200), 1)
        out = {}
        for c, tokens in self.celeb_tokens.items():
            reqs = self.requests_file(f"celeb{c}", tokens, self.port)
            await self.load(self.port, reqs, 0, 1)
            r = await self.load(self.port, reqs, rate, p.celeb_s)
            self.summary(f"following {c} celebrities", r)
            out[str(c)] = r
        self.results["celebrity_reads"] = out
        self.results["celebrity_read_p50_ms"] = {c: r["p50_ms"] for c, r in out.items()}
        self.results["celebrity_read_p99_ms"] = {c: r["p99_ms"] for c, r in out.items()}
        self.results["celebrity_read_api_cpu_ms"] = {
            c: r.get("api_cpu_ms_per_request") for c, r in out.items()}

    # ------------------------------------------------------------------ scenario 6

    async def scenario_memory(self, svc, g: graphs.Graph) -> None:
        log("scenario 6: memory")
        rng = np.random.default_rng(5)
        sample = rng.choice(len(g.ids), size=min(3000, len(g.ids)), replace=False)
        sampled = [svc.home.key(int(g.ids[i])) for i in sample]
        async with svc.redis.pipeline(transaction=False) as pipe:
            for k in sampled:
                pipe.memory_usage(k, samples=0)
                pipe.get(k)
            replies = await pipe.execute()
        usage = np.array(replies[0::2], dtype=np.float64)
        shapes = [list_shape(v) for v in replies[1::2]]
        entries = np.array([n for n, _ in shapes], dtype=np.int64)
        capped = np.array([c for _, c in shapes])
        full = capped & (entries == svc.home.cap)
        info = await svc.redis.info("memory")
        keys_total = await svc.redis.dbsize()
        out = {
            "sampled_timelines": len(sampled),
            "bytes_per_timeline_entry": round(float(usage.sum() / entries.sum()), 3),
            "bytes_per_entry_full_timelines": round(float(usage[full].sum()
                                                          / entries[full].sum()), 3)
            if full.any() else None,
            "bytes_per_cached_timeline_mean": round(float(usage.mean())),
            "entries_per_timeline_mean": round(float(entries.mean()), 1),
            "full_timelines_fraction": round(float(full.mean()), 3),
            "valkey_used_memory_bytes": int(info["used_memory"]),
            "valkey_dataset_bytes": int(info.get("used_memory_dataset", 0)),
            "valkey_keys": keys_total,
            "valkey_used_memory_per_user": round(info["used_memory"] / len(g.ids)),
        }
        log(f"  {out}")
        self.results["memory"] = out
        self.results["bytes_per_timeline_entry"] = out["bytes_per_timeline_entry"]
        self.results["bytes_per_cached_timeline"] = out["bytes_per_cached_timeline_mean"]

    # ------------------------------------------------------------------ scenario 3

    async def scenario_fanout(self, svc, g: graphs.Graph) -> None:

        p = self.plan
        log("scenario 3: fan-out, one worker process")
        rng = np.random.default_rng(9)
        n = len(g.ids)
        biggest = max(p.fanout_sizes)
        filler = await graphs.filler_users(svc, g, biggest - n) if biggest > n else None
        authors = {}
        for size in p.fanout_sizes:
            if size <= n:
                idx = rng.choice(n, size=size, replace=False)
                authors[size] = (await graphs.new_author(svc, g, idx, f"fanout_{size}"),
                                 g.ids[idx])
            else:
                ids = np.concatenate([g.ids, filler[:size - n]])
                authors[size] = (await self.author_of(svc, ids, f"fanout_{size}"), ids)
        # Every author is pushed here: the cost of fan-out itself.
        env = dict(self.env, CHIRP_CELEBRITY_THRESHOLD=NOT_A_CELEBRITY)
        worker = self.spawn(["-m", "workers.fanout"], env=env, name="fanout_worker",
                            quiet=True)
        await asyncio.sleep(3)  # started, id leased, group joined
        out: dict = {}
        try:
            for size, (author, _followers) in authors.items():
                runs, cpus = [], []
                for k in range(p.fanout_runs):
                    base = int(await svc.redis.get(keys.DELIVERIES) or 0)
                    before = self.cpu.snapshot()
                    t0 = time.perf_counter()
                    await svc.tweeting.post(author, f"fan-out {size} run {k}")
                    while int(await svc.redis.get(keys.DELIVERIES) or 0) - base < size:
                        if time.perf_counter() - t0 > 300:
                            raise TimeoutError(f"fan-out to {size} did not finish")
                        await asyncio.sleep(0.005)
                    runs.append(time.perf_counter() - t0)
                    after = self.cpu.snapshot()
                    cpus.append({k2: (after[k2] - before[k2]) * 1e6 / size
                                 for k2 in ("fanout_worker", "valkey", "postgres")})
                    await asyncio.sleep(0.5)
                best = float(np.median(runs))
                out[str(size)] = {
                    "seconds_median": round(best, 3), "runs": [round(r, 3) for r in runs],
                    "deliveries_per_s": round(size / best),
                    **{f"{k2}_cpu_us_per_delivery": round(float(np.median([c[k2] for c in cpus])),
                                                          2) for k2 in cpus[0]},
                }
                log(f"  {size:,} followers: {out[str(size)]}")
        finally:
            self.stop(worker)
        author, followers = authors[biggest]
        raw = await self.raw_redis(svc, followers)
        log(f"  raw pipelined Redis writes of the same {biggest:,} entries: {raw}")
        self.results["fanout"] = {"per_author": out, "raw_redis": raw}
        self.results["fanout_deliveries_per_s"] = {k: v["deliveries_per_s"]
                                                   for k, v in out.items()}
        big = out[str(biggest)]["deliveries_per_s"]
        self.results["fanout_vs_raw_redis_ratio"] = round(big / raw["append_per_s"], 3)
        self.results["fanout_vs_raw_script_ratio"] = round(big / raw["insert_script_per_s"], 3)

    async def author_of(self, svc, follower_ids: np.ndarray, name: str) -> int:
        """An author followed by the given user ids (graph users and fillers)."""
        aid = svc.ids.next_id()
        from datetime import UTC, datetime

        async with svc.pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO users (id, handle, display_name, password_hash, created_at, "
                "followers_count) VALUES ($1, $2, $2, 'x', $3, $4)", aid, name,
                datetime.now(UTC), len(follower_ids))
            seq = graphs._snowflakes(int(time.time() * 1000) - 3 * 86_400_000
                                     + np.arange(len(follower_ids)) // 4000, graphs.GRAPH_WORKER)
            await graphs.copy_bigints(conn, "follows", ["follower_id", "followee_id", "seq"],
                                      [follower_ids, np.full(len(follower_ids), aid), seq])
        return aid

    async def raw_redis(self, svc, follower_ids: np.ndarray) -> dict:
        """The same entries written by this process straight to Redis, 1,000 per round trip:
        APPEND of the 8-byte id (the cheapest write of an entry), and the timeline insert
        script over 1,000 keys per call (what the worker sends, without the worker), each on
        fresh copies of the followers' timelines, three ids in turn (the median is kept, as
        for the worker: a full list's first new head rewrites it with free slots)."""
        from storage.timeline_cache import TimelineCache

        scratch = TimelineCache(svc.redis, "bench:raw", svc.home.cap, 3600,
                                free_slots=svc.home.free_slots)
        owners = [int(i) for i in follower_ids]

        async def copy_timelines() -> None:
            for start in range(0, len(owners), 2000):
                async with svc.redis.pipeline(transaction=False) as pipe:
                    for o in owners[start:start + 2000]:
                        pipe.copy(svc.home.key(o), scratch.key(o), replace=True)
                    await pipe.execute()

        async def append(entry: int) -> None:
            packed = entry.to_bytes(8, "big")
            for start in range(0, len(owners), 1000):
                async with svc.redis.pipeline(transaction=False) as pipe:
                    for o in owners[start:start + 1000]:
                        pipe.append(scratch.key(o), packed)
                    await pipe.execute()

        async def script(entry: int) -> None:
            for start in range(0, len(owners), 1000):
                await scratch.insert_many(owners[start:start + 1000], entry)

        rates = {}
        await scratch.load_scripts()
        for name, write in (("append", append), ("insert_script", script)):
            await copy_timelines()
            times = []
            for _ in range(3):
                entry = svc.ids.next_id()
                t0 = time.perf_counter()
                await write(entry)
                times.append(time.perf_counter() - t0)
            rates[name] = round(len(owners) / float(np.median(times)))
        for start in range(0, len(owners), 5000):
            await svc.redis.delete(*[scratch.key(o) for o in owners[start:start + 5000]])
        return {"entries": len(owners), "append_per_s": rates["append"],
                "insert_script_per_s": rates["insert_script"], "batch": 1000}


def _data(body: bytes) -> bytes:
    """A GraphQL answer's `data`, encoded again (key order kept), and its `degraded` mark."""
    decoded = json.loads(body)
    return json.dumps([decoded.get("data"), (decoded.get("extensions") or {}).get(
        "degraded")]).encode()


def list_shape(value: bytes | None) -> tuple[int, bool]:
    """Entries in a cached list's value, and whether it is capped (storage/timeline_cache.py:
    free slots of 255 bytes may lead, the first zero entry is the sentinel, padding may
    follow it)."""
    slots = [value[i:i + 8] for i in range(0, len(value or b""), 8)]
    free = 0
    while free < len(slots) and slots[free][:1] == b"\xff":
        free += 1
    entries = slots[free:]
    if graphs.SENTINEL in entries:
        return entries.index(graphs.SENTINEL), True
    return len(entries), False


def targets(results: dict) -> dict:
    from bench.report import TARGETS

    flat = dict(results, fanout_100k_deliveries_per_s=results.get(
        "fanout_deliveries_per_s", {}).get("100000"))
    out = {}
    for key, _label, target, op in TARGETS:
        v = flat.get(key)
        met = None if v is None else {">=": v >= target, "<": v < target,
                                      "<=": v <= target}[op]
        out[key] = {"value": v, "target": f"{op} {target}", "met": met}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller graph, short scenarios")
    parser.add_argument("--profile", action="store_true",
                        help="py-spy the API under saturation (bench/results/profile-*.txt)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--redis", choices=("single", "cluster"), default="single",
                        help="cluster: timelines on one Valkey beside a 3-primary cluster "
                             "(bench/cluster.py)")
    args, rest = parser.parse_known_args()
    if args.redis == "cluster":
        from bench import cluster

        cluster.main([*rest, "--out", str(args.out)] +
                     (["--keys", "5000", "--pushes", "3", "--reads", "500"] if args.quick else []))
        return
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    from bench.report import write_reports
    from deploy.local.stack import LocalStack

    plan = Plan.quick() if args.quick else Plan.full()
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="chirp-bench-") as tmp, LocalStack(Path(tmp)) as st:
        bench = Bench(plan, Path(tmp), st, args.profile)
        try:
            results = asyncio.run(bench.run())
        finally:
            bench.stop_all()
    results["mode"] = "quick" if args.quick else "full"
    results["targets"] = targets(results)
    results["wall_seconds"] = round(time.perf_counter() - started, 1)
    paths = write_reports(results, args.out)
    log(f"done in {results['wall_seconds']:.0f} s: " + ", ".join(str(p) for p in paths))


if __name__ == "__main__":
    main()
