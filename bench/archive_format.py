"""Archive object formats side by side (docs/benchmarks.md)."""

from __future__ import annotations

import io
import random
import statistics
import time

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

from core.ids import CHIRP_EPOCH_MS, TIMESTAMP_SHIFT

PAGE = 20


def _texts(rng: random.Random, n: int) -> list[str]:
    # Zipf-distributed words from a 5,000-word vocabulary, 5-45 words a tweet.
    vocab = ["".join(rng.choice("etaoinshrdlucmfwypvbgkqjxz") for _ in range(rng.randint(2, 9)))
             for _ in range(5000)]
    weights = [1 / (i + 1) for i in range(len(vocab))]
    return [" ".join(rng.choices(vocab, weights, k=rng.randint(5, 45))) for _ in range(n)]


def _rows(n: int, seed: int = 1) -> list[tuple[int, str, int]]:
    rng = random.Random(seed)
    ms = CHIRP_EPOCH_MS + 10**9
    ids = sorted((((ms + rng.randint(0, 30 * 86400_000) - CHIRP_EPOCH_MS) << TIMESTAMP_SHIFT)
                  | rng.randint(0, 1 << 22) for _ in range(n)), reverse=True)
    return [(i, t, (i >> TIMESTAMP_SHIFT) + CHIRP_EPOCH_MS) for i, t in zip(ids, _texts(rng, n),
                                                                            strict=True)]


def jsonl_zstd(rows) -> bytes:
    body = b"\n".join(orjson.dumps(r) for r in rows)
    return zstandard.ZstdCompressor(level=9).compress(body)


def read_jsonl_zstd(data: bytes, before: int) -> list:
    lines = zstandard.ZstdDecompressor().decompress(data).split(b"\n")
    out = []
    for line in lines:
        r = orjson.loads(line)
        if r[0] < before:
            out.append(r)
            if len(out) == PAGE:
                break
    return out


def array_zstd(rows) -> bytes:
    return zstandard.ZstdCompressor(level=9).compress(orjson.dumps(rows))


def read_array_zstd(data: bytes, before: int) -> list:
    rows = orjson.loads(zstandard.ZstdDecompressor().decompress(data))
    return [r for r in rows if r[0] < before][:PAGE]


def parquet(rows) -> bytes:
    table = pa.table({"id": [r[0] for r in rows], "text": [r[1] for r in rows],
                      "created_ms": [r[2] for r in rows]})
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd", compression_level=9)
    return sink.getvalue()


def read_parquet(data: bytes, before: int) -> list:
    table = pq.read_table(pa.BufferReader(data))
    ids = table.column("id").to_pylist()
    start = next((k for k, i in enumerate(ids) if i < before), len(ids))
    part = table.slice(start, PAGE)
    return list(zip(part.column("id").to_pylist(), part.column("text").to_pylist(),
                    part.column("created_ms").to_pylist(), strict=True))


FORMATS = {
    "parquet+zstd": (parquet, read_parquet),
    "jsonl+zstd": (jsonl_zstd, read_jsonl_zstd),
    "json-array+zstd": (array_zstd, read_array_zstd),
}


def measure(n: int, reps: int = 200) -> dict[str, dict[str, float]]:
    rows = _rows(n)
    raw = sum(len(orjson.dumps(r)) for r in rows)
    cursor = rows[n // 2][0]
    out = {}
    for name, (write, read) in FORMATS.items():
        data = write(rows)
        assert [r[0] for r in read(data, cursor)] == [r[0] for r in rows[n // 2 + 1:][:PAGE]]
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            read(data, cursor)
            times.append(time.perf_counter() - t)
        out[name] = {"bytes_per_tweet": round(len(data) / n, 1),
                     "raw_bytes_per_tweet": round(raw / n, 1),
                     "page_read_us": round(statistics.median(times) * 1e6, 1)}
    return out


def main() -> None:
    for n in (50, 500, 2000):
        for name, r in measure(n).items():
            print(f"{n:5d} tweets/object  {name:16s} {r['bytes_per_tweet']:7.1f} B/tweet "
                  f"(raw {r['raw_bytes_per_tweet']})  page read {r['page_read_us']:8.1f} us")


if __name__ == "__main__":
    main()
