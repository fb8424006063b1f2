"""A local S3-compatible server, S3Proxy, from Maven Central jars (docs/backends.md)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from deploy.local._jvm import POMS, JvmServer, java
from deploy.local.ports import port_in_use

PORT = 9000
ACCESS_KEY = "chirp"
SECRET_KEY = "chirp-local-secret-key"
REGION = "us-east-1"
BUCKETS = ("chirp-media", "chirp-archive")
HEAP = "256m"

LOGBACK = """\
<configuration>
  <appender name="out" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%-5level [%thread] %date{ISO8601} %logger{20} - %msg%n</pattern></encoder>
  </appender>
  <root level="WARN"><appender-ref ref="out"/></root>
  <logger name="org.gaul.s3proxy" level="INFO"/>
</configuration>
"""


class LocalS3(JvmServer):
    name = "s3"
    title = "S3 (S3Proxy)"
    pom = POMS / "s3proxy" / "pom.xml"
    ready_timeout = 60

    def __init__(self, data_dir: Path, port: int = PORT, detached: bool = False) -> None:
        super().__init__(data_dir, port, detached)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def buckets_dir(self) -> Path:
        return self.data_dir / "buckets"

    def _conf(self) -> str:
        props = {
            "s3proxy.endpoint": self.endpoint_url,
            "s3proxy.authorization": "aws-v2-or-v4",
            "s3proxy.identity": ACCESS_KEY,
            "s3proxy.credential": SECRET_KEY,
            # Browsers upload straight to the bucket from another origin (docs/media.md).
            "s3proxy.cors-allow-all": "true",
            "jclouds.provider": "filesystem",
            "jclouds.filesystem.basedir": str(self.buckets_dir),
        }
        return "".join(f"{k}={v}\n" for k, v in props.items())

    def prepare(self, cp: str) -> None:
        self.buckets_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "s3proxy.conf").write_text(self._conf())
        (self.data_dir / "logback.xml").write_text(LOGBACK)

    def command(self, cp: str) -> list[str]:
        return [
            java(), *self.jvm_tags(), "-Xms64m", f"-Xmx{HEAP}", "-XX:+ExitOnOutOfMemoryError",
            f"-Dlogback.configurationFile={self.data_dir / 'logback.xml'}",
            *self.user_opts(), "-cp", cp, "org.gaul.s3proxy.Main",
            "--properties", str(self.data_dir / "s3proxy.conf"),
        ]

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint_url, aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY, region_name=REGION,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                          request_checksum_calculation="when_required",
                          response_checksum_validation="when_required",
                          connect_timeout=2, read_timeout=5, retries={"max_attempts": 1}),
        )

    def probe(self) -> bool:
        """Our credentials are accepted (the port was free before launch: it is ours)."""
        if not port_in_use(self.port):
            return False
        client = self.client()
        try:
            client.list_buckets()
            return True
        except Exception:
            return False
        finally:
            client.close()

    def start(self) -> bool:
        launched = super().start()
        self.ensure_buckets()
        return launched

    def ensure_buckets(self) -> None:
        client = self.client()
        try:
            have = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
            for bucket in BUCKETS:
                if bucket not in have:
                    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
                        client.create_bucket(Bucket=bucket)
        finally:
            client.close()
