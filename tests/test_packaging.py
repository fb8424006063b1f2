"""A non-editable `pip install .` is a working service."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import textwrap
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ["app.py", "core", "storage", "services", "schema", "resolvers", "loaders",
           "workers", "runtime", "subscriptions", "migrations", "web", "deploy"]
DATA = ["*.sql", "*.cql", "*.lua", "web/live.html", "web/live-client.mjs", "jvm/*/pom.xml"]


def _tracked(pattern: str = "") -> set[str]:
    """The checkout's files as git sees them (committed or not, ignored ones left out)."""
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard",
                          *([pattern] if pattern else [])],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return {p for p in out.split() if (ROOT / p).is_file()}


def _shipped(paths: set[str]) -> set[str]:
    return {p for p in paths if p.split("/")[0] in SHIPPED}


def test_pip_install_dot_ships_a_working_service(tmp_path, stack):
    # A bare venv that sees this environment's dependencies but not its editable chirp:
    # .pth files in a directory named by another .pth are not processed.
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    site = Path(subprocess.run(
        [env_dir / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True).stdout.strip())
    (site / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    # Built from a copy: a build/ left in the checkout would hide what the build misses.
    source = tmp_path / "source"
    for path in _tracked():
        (source / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / path, source / path)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-compile", "--target", str(site), str(source)],
        check=True, timeout=300, cwd=tmp_path,
    )
    shipped = {str(p.relative_to(site)) for p in site.rglob("*") if p.is_file()}
    expected = _shipped(_tracked("*.py") | {p for pattern in DATA for p in _tracked(pattern)})
    assert expected - shipped == set()

    script = textwrap.dedent(f"""
        import importlib, pkgutil, sys
        site = {str(site)!r}
        import app
        for package in {SHIPPED[1:]!r}:
            module = importlib.import_module(package)
            for info in pkgutil.walk_packages(module.__path__, package + "."):
                importlib.import_module(info.name)
        mine = [m.__file__ for name, m in sys.modules.items()
                if name.split(".")[0] in {SHIPPED[1:] + ["app"]!r} and getattr(m, "__file__", None)]
        assert all(f.startswith(site) for f in mine), [f for f in mine if not f.startswith(site)]
        import migrations
        from storage import postgres, cassandra_tweets
        names = [name for name, _sql in migrations.files(postgres.MIGRATIONS_DIR, ".sql")]
        assert names and names == sorted(names), names
        assert migrations.files(cassandra_tweets.MIGRATIONS_DIR, ".cql")
        assert (app.WEB / "live.html").read_text().strip()
        import asyncio, httpx
        from runtime.settings import load
        async def main():
            settings = load({{"CHIRP_ENV": "test", "CHIRP_POSTGRES_URL": {stack.postgres_url!r},
                              "CHIRP_REDIS_URL": {stack.redis_url!r},
                              "CHIRP_DATA_DIR": {str(tmp_path / "data")!r}}})
            application = app.create_app(settings)
            transport = httpx.ASGITransport(app=application)
            async with application.router.lifespan_context(application):
                async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                    ready = await c.get("/readyz")
                    assert ready.status_code == 200, ready.text
                    page = await c.get("/live")
                    assert page.status_code == 200 and "<html" in page.text.lower()
                    r = await c.post("/graphql", json={{"query": "{{ __typename }}"}})
                    assert r.json()["data"] == {{"__typename": "Query"}}, r.text
        asyncio.run(main())
        print("ok", len(names))
    """)
    run = subprocess.run([env_dir / "bin" / "python", "-I", "-c", script], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.startswith("ok")
