"""The benchmark's outputs: JSON, a markdown table and a latency-against-load plot."""

from __future__ import annotations

import json
import math
from pathlib import Path

# (result key, label, target, comparison): the targets of the benchmark issue.
TARGETS = [
    ("home_rps_vs_http_floor_ratio",
     "homeTimeline req/s / a trivial route's, same process and load", 0.10, ">="),
    ("postgres_queries_per_cached_home_read", "PostgreSQL queries per cached home read", 0,
     "<="),
    ("pull_vs_hybrid_postgres_cpu_ratio",
     "pure pull / hybrid PostgreSQL CPU per read, viewers following ~200", 10, ">="),
    ("home_p99_ms_at_70pct", "homeTimeline p99 at 70 % of saturation (ms)", 50, "<"),
    ("graphql_vs_plain_route_rps_ratio", "GraphQL / plain route, req/s", 0.5, ">="),
    ("pull_vs_hybrid_p99_ratio", "pure pull / hybrid p99, viewers following ~200", 10, ">="),
    ("fanout_100k_deliveries_per_s", "fan-out deliveries/s, one worker, 100k followers",
     50_000, ">="),
    ("post_to_visible_p99_ms", "post-to-visible p99 under read load (ms)", 1000, "<"),
    ("bytes_per_timeline_entry", "bytes per cached timeline entry", 16, "<="),
    ("archive_vs_live_page_ratio", "userTimeline page from the archive / from the live store",
     3, "<="),
]


def _met(value, target, op) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    ok = {">=": value >= target, "<": value < target, "<=": value <= target}[op]
    return "met" if ok else "**missed**"


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.2f}" if abs(v) < 100 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _cpu(run: dict, api: str) -> str:
    return " / ".join(_fmt(run.get(f"{k}_cpu_ms_per_request"))
                      for k in (api, "postgres", "valkey"))


def markdown(r: dict) -> str:
    m = r["machine"]
    fan = r.get("fanout_deliveries_per_s", {})
    flat = dict(r, fanout_100k_deliveries_per_s=fan.get("100000"))
    lines = [
        f"# Benchmark results ({r.get('mode', '?')} run)",
        "",
        f"{m['cores']} cores, {m['cpu_model']}, {m['memory_gb']} GB; Python {m['python']}; "
        f"commit `{m['git_commit'][:12]}`{' (working tree modified)' if m['git_dirty'] else ''}"
        f"; {m['started_at']}; load average before {m['uptime_load_before']}, after "
        f"{m.get('uptime_load_after')}. PostgreSQL, Valkey, the API, the fan-out worker and "
        "the load generator share these cores.",
        "",
        "## Targets",
        "",
        "| measure | value | target | |",
        "|---|---|---|---|",
    ]
    for key, label, target, op in TARGETS:
        v = flat.get(key)
        lines.append(f"| {label} | {_fmt(v)} | {op} {_fmt(target)} | {_met(v, target, op)} |")
    g = r.get("graph", {})
    lines += [
        "",
        f"Graph: {_fmt(g.get('users'))} users, {_fmt(g.get('follows'))} follows (median "
        f"following {_fmt(g.get('following_median'))}, mean {_fmt(g.get('following_mean'))}), "
        f"{_fmt(g.get('accounts_with_100k_followers'))} accounts with >= 100k followers, "
        f"{_fmt(g.get('celebrities'))} celebrities (>= {_fmt(g.get('celebrity_threshold'))} "
        f"followers), {_fmt(g.get('tweets'))} tweets over {g.get('tweets_window_hours')} h.",
        "",
        "## 1. homeTimeline(first: 20) over HTTP GraphQL, one API process",
        "",
        "| offered req/s | achieved | p50 ms | p99 ms | p99.9 ms | errors | timeouts "
        "| API CPU ms/req | PG CPU ms/req | load avg |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    home = r.get("home", {})
    rows = ([("closed loop, 32 conn.", home["saturation"])] if home.get("saturation") else [])
    rows += [(_fmt(p["offered_rps"]), p) for p in home.get("open_loop", [])]
    for label, p in rows:
        lines.append(
            f"| {label} | {_fmt(p['achieved_rps'])} | {p['p50_ms']} | {p['p99_ms']} | "
            f"{p['p999_ms']} | {p['errors']} | {p['timeouts']} | "
            f"{_fmt(p.get('api_cpu_ms_per_request'))} | "
            f"{_fmt(p.get('postgres_cpu_ms_per_request'))} | {p['uptime_load'][1]} |")
    f = r.get("floors", {})
    if f:
        v = f["viewers_following_200"]
        ip = f["in_process"]
        lines += [
            "",
            "## 2. Floors and the alternative (same run)",
            "",
            "| path | req/s | p99 ms | ratio to GraphQL over HTTP |",
            "|---|---|---|---|",
            f"| GraphQL over HTTP (scenario 1) | {_fmt(r['home_rps_saturation'])} | "
            f"{r['home_p99_ms_at_70pct']} (at 70 %) | 1 |",
            f"| plain Starlette route, same JSON | "
            f"{_fmt(f['plain_route_saturation']['achieved_rps'])}"
            f" | {f['plain_route_at_graphql_70pct']['p99_ms']} (at GraphQL's 70 % rate) | "
            f"{_fmt(1 / r['graphql_vs_plain_route_rps_ratio'])} |",
            f"| in-process, plain, no HTTP | {_fmt(ip['plain']['rps'])} | {ip['plain']['p99_ms']}"
            f" (32 concurrent) | {_fmt(r['inprocess_plain_vs_graphql_http_rps_ratio'])} |",
            f"| in-process, GraphQL, no HTTP | {_fmt(ip['graphql']['rps'])} | "
            f"{ip['graphql']['p99_ms']} (32 concurrent) | "
            f"{_fmt(r['inprocess_graphql_vs_graphql_http_rps_ratio'])} |",
            "",
            f"Viewers following ~200 accounts (median {r.get('pull_viewers_following_median')}):",
            "",
            "| design | saturation req/s | p50 / p99 ms at pull's 70 % rate | "
            "p50 / p99 ms at hybrid's 70 % rate | API / PG / Valkey CPU ms per read |",
            "|---|---|---|---|---|",
            f"| hybrid (Redis) | {_fmt(v['hybrid_saturation']['achieved_rps'])} | "
            f"{v['hybrid_at_70pct_of_pull']['p50_ms']} / {v['hybrid_at_70pct_of_pull']['p99_ms']}"
            f" | {v['hybrid_at_70pct_of_hybrid']['p50_ms']} / "
            f"{v['hybrid_at_70pct_of_hybrid']['p99_ms']} | "
            f"{_cpu(v['hybrid_at_70pct_of_pull'], 'api')} |",
            f"| pure pull (PostgreSQL) | {_fmt(v['pull_saturation']['achieved_rps'])} | "
            f"{v['pull_at_70pct_of_pull']['p50_ms']} / {v['pull_at_70pct_of_pull']['p99_ms']} | "
            f"{v['pull_at_70pct_of_hybrid']['p50_ms']} / {v['pull_at_70pct_of_hybrid']['p99_ms']}"
            f" | {_cpu(v['pull_at_70pct_of_pull'], 'api_pull')} |",
            "",
            f"pull / hybrid p99: {r['pull_vs_hybrid_p99_ratio']} at the same rate (70 % of "
            f"pull's saturation), {r['pull_vs_hybrid_p99_ratio_at_hybrid_70pct']} at 70 % of "
            f"hybrid's; pull / hybrid saturation req/s: {r['pull_vs_hybrid_rps_ratio']}; "
            f"pull / hybrid PostgreSQL CPU per read: "
            f"{r.get('pull_vs_hybrid_postgres_cpu_ratio')}. Hybrid reads that left the cache "
            f"during that run (store pages, rebuilds, degraded): "
            f"{v['hybrid_at_70pct_of_pull'].get('read_path_counters')}.",
        ]
    fo = r.get("fanout", {})
    if fo:
        raw = fo["raw_redis"]
        lines += ["", "## 3. Fan-out, one worker process", "",
                  "| followers | deliveries/s | worker CPU µs/delivery | Valkey CPU µs/delivery "
                  "| PostgreSQL CPU µs/delivery |", "|---|---|---|---|---|"]
        for size, v in fo["per_author"].items():
            lines.append(f"| {_fmt(int(size))} | {_fmt(v['deliveries_per_s'])} | "
                         f"{v.get('fanout_worker_cpu_us_per_delivery')} | "
                         f"{v.get('valkey_cpu_us_per_delivery')} | "
                         f"{v.get('postgres_cpu_us_per_delivery')} |")
        lines += ["", f"Raw pipelined writes of the same {_fmt(raw['entries'])} entries from "
                  f"one process, 1,000 per round trip, each on fresh copies of the "
                  f"timelines, median of three ids: APPEND {_fmt(raw['append_per_s'])}/s, "
                  f"the insert script over 1,000 keys per call "
                  f"{_fmt(raw['insert_script_per_s'])}/s. Worker / raw APPEND: "
                  f"{r['fanout_vs_raw_redis_ratio']}; worker / script: "
                  f"{r['fanout_vs_raw_script_ratio']}."]
    pv = r.get("post_to_visible")
    if pv:
        lines += ["", "## 4. Post-to-visible under 70 % read load", "",
                  f"{pv['posts']} posts; follower pushed first: {pv['pushed_first']}; "
                  f"follower pushed last: {pv['pushed_last']}; not visible within 10 s: "
                  f"{pv['not_visible_within_10s']}. Reads meanwhile: "
                  f"{_fmt(pv['reads_meanwhile']['achieved_rps'])} req/s, p99 "
                  f"{pv['reads_meanwhile']['p99_ms']} ms."]
    cr = r.get("celebrity_reads")
    if cr:
        lines += ["", "## 5. Celebrity read cost", "",
                  "| celebrities followed | p50 ms | p99 ms | API CPU ms/req |",
                  "|---|---|---|---|"]
        for c, v in cr.items():
            lines.append(f"| {c} | {v['p50_ms']} | {v['p99_ms']} | "
                         f"{_fmt(v.get('api_cpu_ms_per_request'))} |")
    mem = r.get("memory")
    if mem:
        lines += ["", "## 6. Memory", "",
                  f"{mem['bytes_per_timeline_entry']} bytes per cached timeline entry "
                  f"({mem['bytes_per_entry_full_timelines']} for full 800-entry timelines); "
                  f"{_fmt(mem['bytes_per_cached_timeline_mean'])} bytes per cached timeline "
                  f"(mean {mem['entries_per_timeline_mean']} entries); Valkey used memory "
                  f"{_fmt(mem['valkey_used_memory_per_user'])} bytes per user."]
    a = r.get("archive")
    if a:
        lines += ["", "## 7. Cold storage (archive)", "",
                  f"{_fmt(a['tweets'])} tweets moved into {_fmt(a['objects'])} objects at "
                  f"{_fmt(a['archive_tweets_per_s'])} tweets/s, {a['bytes_per_tweet']} bytes "
                  f"per tweet in objects; PostgreSQL {a.get('pg_bytes_per_live_tweet')} bytes "
                  f"per live tweet, {a.get('pg_bytes_per_archived_tweet')} per archived one "
                  "(its index row). The same 20-tweet pages, median ms:", "",
                  "| read | live store | archive, object fetched | archive, object cached "
                  "| ratio (fetched / live) |", "|---|---|---|---|---|",
                  f"| userTimeline over GraphQL (in-process) | {a['user_page_live_ms']} | "
                  f"{a['user_page_archive_cold_ms']} | {a['user_page_archive_warm_ms']} | "
                  f"{a['archive_vs_live_page_ratio']} |",
                  f"| TweetStore.by_author (past the cached window) | {a['store_page_live_ms']} "
                  f"| {a['store_page_archive_cold_ms']} | {a['store_page_archive_warm_ms']} | "
                  f"{a['archive_vs_live_store_page_ratio']} |"]
    return "\n".join(lines) + "\n"


def plot(r: dict, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    pts = r.get("home", {}).get("open_loop", [])
    if not pts:
        return False
    x = [p["offered_rps"] for p in pts]
    fig, ax = plt.subplots(figsize=(8, 5))
    for key, label in (("p50_ms", "p50"), ("p99_ms", "p99"), ("p999_ms", "p99.9")):
        ax.plot(x, [p[key] for p in pts], marker="o", label=f"GraphQL {label}")
    floors = r.get("floors", {})
    if floors:
        pr = floors["plain_route_at_graphql_70pct"]
        ax.plot([pr["offered_rps"]], [pr["p99_ms"]], marker="s", linestyle="",
                label="plain route p99")
    ax.axvline(r["home_rps_saturation"], color="grey", linestyle="--",
               label=f"saturation {r['home_rps_saturation']:.0f} req/s")
    ax.axhline(50, color="red", linestyle=":", label="50 ms")
    ax.set_yscale("log")
    ax.set_xlabel("offered load (req/s, open loop)")
    ax.set_ylabel("latency from intended send (ms)")
    m = r["machine"]
    ax.set_title(f"homeTimeline(first: 20), one API process — {m['cores']} cores, "
                 f"{r.get('mode')} run")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_reports(results: dict, out: Path, stem: str = "latest") -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}.json", out / f"{stem}.md"]
    paths[0].write_text(json.dumps(results, indent=2, default=str) + "\n")
    paths[1].write_text(markdown(results))
    if plot(results, out / f"{stem}.png"):
        paths.append(out / f"{stem}.png")
    return paths


if __name__ == "__main__":
    import sys

    src = Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results/latest.json")
    print("\n".join(str(p) for p in write_reports(json.loads(src.read_text()), src.parent,
                                                  src.stem)))
