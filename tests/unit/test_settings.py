import re
from pathlib import Path

import pytest

from runtime.settings import ConfigError, load


def base(tmp_path, **extra):
    return {"CHIRP_DATA_DIR": str(tmp_path), **extra}


def test_defaults(tmp_path):
    s = load(base(tmp_path))
    assert (s.port, s.timeline_max, s.timeline_ttl_seconds) == (8000, 800, 72 * 3600)
    assert (s.active_days, s.tweet_rate_per_hour) == (30, 100)
    assert (s.archive_after_days, s.archive_store, s.archive_interval_hours) == (365, "file", 24)
    assert load(base(tmp_path, CHIRP_ARCHIVE_STORE="s3://chirp-archive/tweets")).archive_store
    assert (s.media_store, s.public_url, s.s3_region) == (
        "file", None, "us-east-1")
    # the generated dev secret is kept, so tokens survive a restart
    assert load(base(tmp_path)).jwt_secret == s.jwt_secret


@pytest.mark.parametrize(
    "name,value",
    [
        ("CHIRP_PORT", "eighty"),
        ("CHIRP_PORT", "70000"),
        ("CHIRP_TIMELINE_MAX", "0"),
        ("CHIRP_CELEBRITY_THRESHOLD", "-3"),
        ("CHIRP_TWEET_RATE_PER_HOUR", "1.5"),
        ("CHIRP_POSTGRES_URL", "mysql://x"),
        ("CHIRP_REDIS_URL", "http://x"),
        ("CHIRP_ENV", "staging"),
        ("CHIRP_ARCHIVE_STORE", "ftp://x"),
        ("CHIRP_ARCHIVE_STORE", "s3://"),
        ("CHIRP_ARCHIVE_AFTER_DAYS", "0"),
        ("CHIRP_ARCHIVE_INTERVAL_HOURS", "-1"),
        ("CHIRP_ARCHIVE_FAULT_AFTER", "written:0"),
        ("CHIRP_WORKER_CLAIM_IDLE_MS", "soon"),
        ("CHIRP_WORKER_CLAIM_IDLE_MS", "0"),
        ("CHIRP_DEV_PG_PORT", "99999"),
        ("CHIRP_DEV_REDIS_PORT", "x"),
        ("CHIRP_FAULT_EXIT_BEFORE_ACK", "yes"),
        ("CHIRP_MEDIA_STORE", "s3:/bucket"),
        ("CHIRP_MEDIA_STORE", "s3://Bad_Bucket"),
        ("CHIRP_S3_ENDPOINT_URL", "127.0.0.1:9000"),
        ("CHIRP_PUBLIC_URL", "chirp.example"),
        ("CHIRP_S3_ACCESS_KEY_ID", "only-the-key"),
        ("CHIRP_MEDIA_PUBLIC_URL", "cdn.example/media"),
        ("CHIRP_MEDIA_MAX_BYTES", "0"),
        ("CHIRP_MEDIA_ORPHAN_HOURS", "-1"),
        ("CHIRP_MEDIA_UPLOADS_PER_HOUR", "0"),
        ("CHIRP_INTERNAL_PORT", "70000"),
        ("CHIRP_INTERNAL_PORT", "8000"),  # the public port
    ],
)
def test_bad_values_name_the_variable(tmp_path, name, value):
    with pytest.raises(ConfigError, match=name):
        load(base(tmp_path, **{name: value}))


def test_production_requires_a_secret(tmp_path):
    with pytest.raises(ConfigError, match="CHIRP_JWT_SECRET"):
        load(base(tmp_path, CHIRP_ENV="production"))
    s = load(base(tmp_path, CHIRP_ENV="production", CHIRP_JWT_SECRET="s" * 40))
    assert s.production


def test_active_window_must_outlive_cached_timelines(tmp_path):
    with pytest.raises(ConfigError, match="CHIRP_ACTIVE_DAYS"):
        load(base(tmp_path, CHIRP_ACTIVE_DAYS="3", CHIRP_TIMELINE_TTL_SECONDS=str(3 * 86400)))
    load(base(tmp_path, CHIRP_ACTIVE_DAYS="4", CHIRP_TIMELINE_TTL_SECONDS=str(3 * 86400)))


ROOT = Path(__file__).resolve().parents[2]
NAME = re.compile(r"CHIRP_[A-Z][A-Z0-9_]*[A-Z0-9]")
READ = re.compile(r"(environ\.get\(|environ\[|getenv\()\s*[\"']CHIRP_")


def test_every_service_setting_is_read_by_settings_and_documented():
    """The service's code names a CHIRP_* variable only in runtime/settings.py (which
    validates it), and the README's configuration table has a row for each."""
    settings = (ROOT / "runtime" / "settings.py").read_text()
    readme = (ROOT / "README.md").read_text()
    outside = {}
    for path in ROOT.glob("*/**/*.py"):
        top = path.relative_to(ROOT).parts[0]
        if top in ("tests", "bench", "deploy", ".venv") or path.name == "settings.py":
            continue
        for line in path.read_text().splitlines():
            if READ.search(line):
                outside[str(path.relative_to(ROOT))] = line.strip()
    assert outside == {}
    for name in set(NAME.findall(settings)):
        suffix = "`_" + name.rsplit("_", 1)[1] + "`"
        assert f"`{name}`" in readme or suffix in readme, name
