"""Media processing and upload latency (docs/benchmarks.md)."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import multiprocessing
import os
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "media.json"
PICTURES = {"1mp": (1152, 864), "12mp": (4000, 3000)}


def photo_jpeg(width: int, height: int) -> bytes:
    """Smooth colour fields with sensor-like noise: compresses as a photo does (~2 bits
    per pixel at quality 90), with an EXIF block (orientation, camera, GPS)."""
    from PIL import Image, ImageFilter
    from PIL.ExifTags import IFD

    small = (max(8, width // 64), max(8, height // 64))
    channels = [Image.effect_noise(small, 90).resize((width, height), Image.Resampling.BICUBIC)
                for _ in range(3)]
    noise = Image.effect_noise((width, height), 12).filter(ImageFilter.BoxBlur(1))
    im = Image.merge("RGB", [Image.blend(c, noise, 0.25) for c in channels])
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "BenchCam"
    exif.get_ifd(IFD.GPSInfo)[2] = (48.0, 51.0, 29.0)
    out = io.BytesIO()
    im.save(out, "JPEG", quality=90, exif=exif.tobytes())
    return out.getvalue()


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _reset_peak() -> None:
    """Peak RSS (VmHWM) := current RSS (Linux >= 4.0). getrusage's ru_maxrss would not
    do: Linux carries it over from the parent across fork and exec."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _pillow_full(data: bytes) -> None:
    from core.imaging import process

    process(data, "image/jpeg", 50_000_000)


def _pillow_bare(data: bytes) -> None:
    """Decode at the scale core/imaging picks and resize to the largest size: the least
    any Pillow pipeline making that size must do."""
    from PIL import Image

    from core.imaging import DRAFT_SHARE, _fit

    im = Image.open(io.BytesIO(data))
    tw, th = _fit(im.size, 2048)
    im.draft("RGB", (int(tw * DRAFT_SHARE), int(th * DRAFT_SHARE)))
    im.load()
    size = _fit(im.size, 2048)
    if size != im.size:
        im = im.resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0)


def _vips_full(data: bytes) -> None:
    """What core/imaging.process makes, done with libvips: shrink-on-load to the largest
    size, the others from it, each as WebP and JPEG, metadata stripped."""
    import pyvips

    large = pyvips.Image.thumbnail_buffer(data, 2048, size="down").copy_memory()
    timeline = large.thumbnail_image(1200, size="down").copy_memory()
    thumb = pyvips.Image.thumbnail_buffer(data, 150, height=150, crop="centre",
                                          size="down").copy_memory()
    for v in (large, timeline, thumb):
        v.webpsave_buffer(Q=80, effort=2, keep="none")
        v.jpegsave_buffer(Q=85, keep="none")


def _vips_bare(data: bytes) -> None:
    import pyvips

    pyvips.Image.thumbnail_buffer(data, 2048, size="down").copy_memory()


KINDS = {"pillow": _pillow_full, "pillow_bare": _pillow_bare, "pyvips": _vips_full,
         "pyvips_bare": _vips_bare}


def _measure(kind: str, path: str, runs: int, out: multiprocessing.Queue) -> None:
    fn = KINDS[kind]
    data = Path(path).read_bytes()
    if kind.startswith("pyvips"):
        import pyvips

        pyvips.cache_set_max(0)  # no operation cache: each run decodes afresh
    else:
        import PIL.Image  # noqa: F401  (imported before the baseline, as a server has it)

        import core.imaging  # noqa: F401
    _reset_peak()
    baseline = _status_kib("VmRSS")
    fn(data)  # the first run: its peak is the memory one picture takes
    peak = _status_kib("VmHWM") - baseline
    times, cpu = [], []
    for _ in range(runs):
        t0, c0 = time.perf_counter(), time.process_time()
        fn(data)
        times.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    # CPU time: what a picture costs a server processing several at once (libvips spreads
    # one picture over its threads, so its wall time alone would flatter it).
    out.put({"ms": round(statistics.median(times), 1),
             "cpu_ms": round(statistics.median(cpu), 1), "peak_mib": round(peak / 1024, 1)})


def measure(kind: str, path: Path, runs: int) -> dict:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_measure, args=(kind, str(path), runs, queue))
    proc.start()
    result = queue.get(timeout=600)
    proc.join()
    return result


def processing(workdir: Path, quick: bool) -> dict:
    results: dict = {}
    for name, (w, h) in PICTURES.items():
        path = workdir / f"{name}.jpg"
        path.write_bytes(photo_jpeg(w, h))
        runs = 3 if quick else (9 if name == "1mp" else 5)
        row = {"bytes": path.stat().st_size}
        for kind in KINDS:
            row[kind] = measure(kind, path, runs)
        row["pillow_vs_bare_ratio"] = round(row["pillow"]["ms"] / row["pillow_bare"]["ms"], 2)
        row["pillow_vs_bare_cpu_ratio"] = round(
            row["pillow"]["cpu_ms"] / row["pillow_bare"]["cpu_ms"], 2)
        row["pyvips_vs_pillow_cpu_ratio"] = round(
            row["pyvips"]["cpu_ms"] / row["pillow"]["cpu_ms"], 2)
        results[name] = row
        print(f"{name}: {json.dumps(row)}", flush=True)
    return results


async def uploads(workdir: Path, store_env: dict[str, str], concurrent: int) -> dict:
    import httpx

    from app import create_app
    from deploy.local.postgres import EmbeddedPostgres
    from deploy.local.valkey import EmbeddedValkey
    from runtime.container import open_services
    from runtime.settings import load

    data = photo_jpeg(*PICTURES["1mp"])
    pg = EmbeddedPostgres(workdir / f"pg-{len(store_env)}")
    vk = EmbeddedValkey(workdir / f"vk-{len(store_env)}")
    env = {"CHIRP_ENV": "test", "CHIRP_DATA_DIR": str(workdir / "data"),
           "CHIRP_POSTGRES_URL": pg.start(), "CHIRP_REDIS_URL": vk.start(),
           "CHIRP_SIGNUP_RATE_PER_HOUR": "100000", **store_env}
    try:
        svc = await open_services(load(env))
        transport = httpx.ASGITransport(app=create_app(services=svc))
        async with httpx.AsyncClient(transport=transport, base_url="http://chirp.bench") as app, \
                httpx.AsyncClient(timeout=60) as net:

            async def gql(query: str, variables: dict, token: str | None = None) -> dict:
                headers = {"authorization": f"Bearer {token}"} if token else {}
                r = await app.post("/graphql", json={"query": query, "variables": variables},
                                   headers=headers)
                body = r.json()
                assert "errors" not in body, body
                return body["data"]

            tokens = [
                (await gql('mutation($h:String!){signUp(handle:$h,password:"password123")'
                           "{token}}", {"h": f"b{i}x{os.getpid() % 10000}"}))["signUp"]["token"]
                for i in range(concurrent)
            ]

            async def one(token: str) -> float:
                t0 = time.perf_counter()
                up = (await gql("mutation($n:Int!){createMediaUpload(contentType:"
                                "\"image/jpeg\",byteSize:$n){media{id} uploadUrl "
                                "uploadHeaders{name value}}}", {"n": len(data)},
                                token))["createMediaUpload"]
                url = up["uploadUrl"]
                client = app if url.startswith("http://chirp.bench/") else net
                r = await client.put(url, content=data, headers={
                    h["name"]: h["value"] for h in up["uploadHeaders"]})
                assert r.status_code == 200, r.text
                done = await gql("mutation($m:ID!){completeMediaUpload(mediaId:$m){state}}",
                                 {"m": up["media"]["id"]}, token)
                assert done["completeMediaUpload"]["state"] == "READY", done
                return (time.perf_counter() - t0) * 1000

            await one(tokens[0])  # warm: imports, pools
            t0 = time.perf_counter()
            times = sorted(await asyncio.gather(*(one(t) for t in tokens)))
            wall = time.perf_counter() - t0
        store = svc.media.store  # the local S3 server outlives the run: leave nothing there
        await store.delete_many(await store.list(""))
        await svc.close()
    finally:
        vk.stop()
        pg.stop()
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    return {"concurrent": concurrent, "workers": load(env).media_workers,
            "p50_ms": round(statistics.median(times), 1), "p99_ms": round(p99, 1),
            "max_ms": round(times[-1], 1), "wall_s": round(wall, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs per picture")
    parser.add_argument("--s3", action="store_true",
                        help="also upload to the local S3 server (starts it if needed)")
    parser.add_argument("--concurrent", type=int, default=20)
    args = parser.parse_args()
    report: dict = {"cpus": os.cpu_count(), "load_avg_1m": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="chirp-bench-media-") as tmp:
        workdir = Path(tmp)
        report["processing"] = processing(workdir, args.quick)
        stores = {"file": {"CHIRP_MEDIA_STORE": "file"}}
        if args.s3:
            from deploy.local import s3proxy
            from deploy.local.backends import servers, start_all

            start_all(servers(only="s3"), report=False)
            stores["s3"] = {
                "CHIRP_MEDIA_STORE": f"s3://chirp-media/bench{os.getpid()}",
                "CHIRP_S3_ENDPOINT_URL": f"http://127.0.0.1:{s3proxy.PORT}",
                "CHIRP_S3_ACCESS_KEY_ID": s3proxy.ACCESS_KEY,
                "CHIRP_S3_SECRET_ACCESS_KEY": s3proxy.SECRET_KEY,
            }
        report["upload_to_ready"] = {}
        for name, env in stores.items():
            found = asyncio.run(uploads(workdir, env, args.concurrent))
            report["upload_to_ready"][name] = found
            print(f"upload to READY, {name} store: {json.dumps(found)}", flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
