"""Object storage: one port (`ObjectStore`) and its two adapters (docs/modules.md)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import functools
import hashlib
import hmac
import os
import re
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol, TypeVar
from urllib.parse import quote, urlsplit

T = TypeVar("T")

_KEY = re.compile(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*")
GET_URL_TTL_S = 7 * 24 * 3600  # SigV4's longest presigned URL


class ObjectNotFound(LookupError):
    pass


class UploadRefused(Exception):
    """A PUT to a file store's upload URL that its signature does not allow."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    content_type: str


class PresignedPut(NamedTuple):
    """Send exactly the declared bytes with HTTP PUT to `url` with `headers`."""

    url: str
    headers: dict[str, str]


class ObjectStore(Protocol):
    async def put(self, key: str, data: bytes, content_type: str) -> None: ...

    async def get(self, key: str) -> bytes:
        """The object's bytes; ObjectNotFound if there is none."""
        ...

    async def head(self, key: str) -> ObjectInfo | None: ...

    async def delete(self, key: str) -> None:
        """Idempotent: deleting a missing key is no error."""
        ...

    async def delete_many(self, keys: Iterable[str]) -> None: ...

    async def list(self, prefix: str) -> list[str]:
        """Every key starting with `prefix`, sorted."""
        ...

    def presign_put(self, key: str, content_type: str, byte_size: int,
                    expires_s: int) -> PresignedPut:
        """A URL accepting one PUT of exactly `byte_size` bytes of `content_type` until
        `expires_s` seconds from now; the store refuses anything else."""
        ...

    def url(self, key: str) -> str:
        """A URL answering GET with the object (stable for at least a day)."""
        ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


def check_key(key: str) -> str:
    if len(key) > 512 or not _KEY.fullmatch(key) or any(
            part in (".", "..") for part in key.split("/")):
        raise ValueError(f"bad object key {key!r}")
    return key


class FileObjectStore:
    """Objects as files under `root/data`, each content type beside it under `root/types`.

    `name` is the store's path segment on the API (`{base_url}/objects/{name}/{key}`);
    `base_url` is the API's address, or a function answering it per request; `secret`
    signs upload URLs."""

    def __init__(self, root: Path, name: str, base_url: str | Callable[[], str],
                 secret: bytes, clock: Callable[[], float] = time.time) -> None:
        self.root = Path(root)
        self.name = name
        self._base_url = base_url
        self._secret = hashlib.sha256(b"chirp-objects\0" + secret).digest()
        self._clock = clock
        self._data = self.root / "data"
        self._types = self.root / "types"

    def data_path(self, key: str) -> Path:
        return self._data / check_key(key)

    def _type_path(self, key: str) -> Path:
        return self._types / check_key(key)

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await asyncio.to_thread(self._put, key, data, content_type)

    def _put(self, key: str, data: bytes, content_type: str) -> None:
        # Type first, data last: a key whose data exists always has its type.
        _write_atomic(self._type_path(key), content_type.encode())
        _write_atomic(self.data_path(key), data)

    async def get(self, key: str) -> bytes:
        try:
            return await asyncio.to_thread(self.data_path(key).read_bytes)
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFound(key) from None

    async def head(self, key: str) -> ObjectInfo | None:
        return await asyncio.to_thread(self._head, key)

    def _head(self, key: str) -> ObjectInfo | None:
        try:
            size = self.data_path(key).stat().st_size
            content_type = self._type_path(key).read_text()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return ObjectInfo(size, content_type)

    async def delete(self, key: str) -> None:
        await self.delete_many([key])

    async def delete_many(self, keys: Iterable[str]) -> None:
        paths = [p for k in keys for p in (self.data_path(k), self._type_path(k))]
        await asyncio.to_thread(_unlink_all, paths)

    async def list(self, prefix: str) -> list[str]:
        return await asyncio.to_thread(self._list, prefix)

    def _list(self, prefix: str) -> list[str]:
        if not self._data.is_dir():
            return []
        # Walk only the directory the prefix names, then filter by the rest of it.
        start = self._data / prefix.rpartition("/")[0] if "/" in prefix else self._data
        found = []
        for dirpath, _, files in os.walk(start):
            rel = Path(dirpath).relative_to(self._data)
            for f in files:
                key = f if rel == Path(".") else f"{rel.as_posix()}/{f}"
                if key.startswith(prefix) and not f.startswith(".tmp-"):
                    found.append(key)
        return sorted(found)

    def presign_put(self, key: str, content_type: str, byte_size: int,
                    expires_s: int) -> PresignedPut:
        expires = int(self._clock()) + expires_s
        sig = self._signature(check_key(key), content_type, byte_size, expires)
        url = f"{self.url(key)}?expires={expires}&signature={sig}"
        return PresignedPut(url, {"Content-Type": content_type})

    def _signature(self, key: str, content_type: str, byte_size: int, expires: int) -> str:
        msg = f"PUT\n{self.name}\n{key}\n{content_type}\n{byte_size}\n{expires}".encode()
        digest = hmac.new(self._secret, msg, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def check_upload(self, key: str, expires: str, signature: str, content_type: str,
                     content_length: str | None) -> int:
        """The declared length, if a PUT with these headers may store `key`; else
        UploadRefused, as S3 refuses a presigned PUT whose signed headers differ."""
        if content_length is None or not content_length.isdigit():
            raise UploadRefused(411, "Content-Length is required")
        if not expires.isdigit():
            raise UploadRefused(403, "the upload URL is not signed")
        try:
            check_key(key)
        except ValueError:
            raise UploadRefused(400, "bad key") from None
        want = self._signature(key, content_type, int(content_length), int(expires))
        if not hmac.compare_digest(want, signature):
            raise UploadRefused(403, "signature does not match: the URL, the Content-Type "
                                     "or the Content-Length differ from what was signed")
        if int(expires) < self._clock():
            raise UploadRefused(403, "the upload URL has expired")
        return int(content_length)

    def url(self, key: str) -> str:
        base = self._base_url if isinstance(self._base_url, str) else self._base_url()
        return f"{base.rstrip('/')}/objects/{self.name}/{quote(check_key(key))}"

    async def ping(self) -> None:
        await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)

    async def close(self) -> None:
        return None


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}-{time.monotonic_ns()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _unlink_all(paths: list[Path]) -> None:
    for p in paths:
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            p.unlink()


@dataclass(frozen=True)
class S3Config:
    endpoint_url: str | None
    access_key_id: str | None
    secret_access_key: str | None
    region: str


def parse_s3_url(url: str) -> tuple[str, str]:
    """`s3://bucket[/prefix]` -> (bucket, prefix ending in '/' or empty)."""
    if not url.startswith("s3://"):
        raise ValueError("must be s3://bucket[/prefix]")
    bucket, _, prefix = url[5:].partition("/")
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket):
        raise ValueError(f"bad bucket name {bucket!r}")
    prefix = prefix.strip("/")
    if prefix:
        check_key(prefix)
    return bucket, f"{prefix}/" if prefix else ""


class S3ObjectStore:
    """boto3 calls run in a bounded thread pool of `workers` threads (docs/modules.md)."""

    def __init__(self, url: str, config: S3Config, workers: int = 8) -> None:
        import boto3
        from botocore.config import Config

        self.bucket, self.prefix = parse_s3_url(url)
        self.config = config
        self._client = boto3.session.Session().client(
            "s3",
            endpoint_url=config.endpoint_url,
            aws_access_key_id=config.access_key_id,
            aws_secret_access_key=config.secret_access_key,
            region_name=config.region,
            config=Config(
                signature_version="s3v4",
                # boto3 >= 1.36 sends CRC checksums by default, which S3-compatible
                # servers (S3Proxy among them) refuse; S3 needs them only when required.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                s3={"addressing_style": "path" if config.endpoint_url else "auto"},
                max_pool_connections=workers,
                connect_timeout=2, read_timeout=20,
                retries={"max_attempts": 3, "mode": "standard"},
            ),
        )
        self._client.meta.events.register("before-sign.s3.DeleteObjects", _content_md5)
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="s3")
        self._get_signer = _GetSigner(self._client, self.bucket, config)

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    async def _call(self, fn: Callable[..., T], **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, **kwargs))

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await self._call(self._client.put_object, Bucket=self.bucket, Key=self._key(key),
                         Body=data, ContentType=content_type)

    async def get(self, key: str) -> bytes:
        def read() -> bytes:
            try:
                answer = self._client.get_object(Bucket=self.bucket, Key=self._key(key))
            except self._client.exceptions.NoSuchKey:
                raise ObjectNotFound(key) from None
            with contextlib.closing(answer["Body"]) as body:
                return body.read()

        return await self._call(read)

    async def head(self, key: str) -> ObjectInfo | None:
        from botocore.exceptions import ClientError

        try:
            answer = await self._call(self._client.head_object, Bucket=self.bucket,
                                      Key=self._key(key))
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return ObjectInfo(int(answer["ContentLength"]),
                          answer.get("ContentType") or "application/octet-stream")

    async def delete(self, key: str) -> None:
        await self._call(self._client.delete_object, Bucket=self.bucket, Key=self._key(key))

    async def delete_many(self, keys: Iterable[str]) -> None:
        full = [self._key(k) for k in keys]
        for i in range(0, len(full), 1000):  # DeleteObjects takes at most 1,000 keys
            batch = {"Objects": [{"Key": k} for k in full[i:i + 1000]], "Quiet": True}
            answer = await self._call(self._client.delete_objects, Bucket=self.bucket,
                                      Delete=batch)
            errors = [e for e in answer.get("Errors", []) if e.get("Code") != "NoSuchKey"]
            if errors:
                raise RuntimeError(f"S3 refused to delete {len(errors)} objects: {errors[0]}")

    async def list(self, prefix: str) -> list[str]:
        def walk() -> list[str]:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + prefix)
            n = len(self.prefix)
            # Keys ending in '/' are directory markers (S3Proxy's filesystem store lists
            # them); no key of ours ends so.
            return sorted(o["Key"][n:] for page in pages for o in page.get("Contents", [])
                          if not o["Key"].endswith("/"))

        return await self._call(walk)

    def presign_put(self, key: str, content_type: str, byte_size: int,
                    expires_s: int) -> PresignedPut:
        # Content-Type and Content-Length are signed headers: S3 refuses any other.
        url = self._client.generate_presigned_url(
            "put_object",
            Params={"Bucket": self.bucket, "Key": self._key(key), "ContentType": content_type,
                    "ContentLength": byte_size},
            ExpiresIn=expires_s,
        )
        return PresignedPut(url, {"Content-Type": content_type})

    def url(self, key: str) -> str:
        return self._get_signer.url(self._key(key))

    async def ping(self) -> None:
        await self._call(self._client.head_bucket, Bucket=self.bucket)

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        await asyncio.to_thread(self._client.close)


def _content_md5(request: Any, **_: Any) -> None:
    """DeleteObjects must carry a checksum. boto3 >= 1.36 sends a CRC32 header that
    S3-compatible servers (S3Proxy) refuse; Content-MD5, which S3 accepts too, they take."""
    headers = request.headers
    for name in [h for h in headers if h.lower().startswith(("x-amz-checksum-",
                                                            "x-amz-sdk-checksum-"))]:
        del headers[name]
    body = request.body if isinstance(request.body, bytes) else request.body.encode()
    headers["Content-MD5"] = base64.b64encode(hashlib.md5(body).digest()).decode()


class _GetSigner:
    """SigV4 presigned GET URLs dated at the start of the UTC day: the same all day
    (docs/modules.md)."""

    def __init__(self, client: Any, bucket: str, config: S3Config) -> None:
        endpoint = urlsplit(client.meta.endpoint_url)
        self.scheme, self.host = endpoint.scheme, endpoint.netloc
        self.path_style = bool(config.endpoint_url)
        if not self.path_style:
            self.host = f"{bucket}.{self.host}"
        self.bucket = bucket
        self.region = config.region
        self.access_key = config.access_key_id or ""
        self.secret_key = config.secret_access_key or ""
        if not config.access_key_id:  # the default credential chain (env, instance role)
            creds = client._request_signer._credentials
            if creds is not None:
                frozen = creds.get_frozen_credentials()
                self.access_key, self.secret_key = frozen.access_key, frozen.secret_key
        self._day: str = ""
        self._signing_key = b""

    def url(self, full_key: str) -> str:
        day = dt.datetime.now(dt.UTC).strftime("%Y%m%d")
        if day != self._day:
            k = hmac.new(f"AWS4{self.secret_key}".encode(), day.encode(), hashlib.sha256)
            for part in (self.region, "s3", "aws4_request"):
                k = hmac.new(k.digest(), part.encode(), hashlib.sha256)
            self._day, self._signing_key = day, k.digest()
        amz_date = f"{day}T000000Z"
        scope = f"{day}/{self.region}/s3/aws4_request"
        path = quote(f"/{self.bucket}/{full_key}" if self.path_style else f"/{full_key}",
                     safe="/~")
        query = (f"X-Amz-Algorithm=AWS4-HMAC-SHA256"
                 f"&X-Amz-Credential={quote(f'{self.access_key}/{scope}', safe='')}"
                 f"&X-Amz-Date={amz_date}&X-Amz-Expires={GET_URL_TTL_S}"
                 f"&X-Amz-SignedHeaders=host")
        canonical = f"GET\n{path}\n{query}\nhost:{self.host}\n\nhost\nUNSIGNED-PAYLOAD"
        to_sign = (f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n"
                   f"{hashlib.sha256(canonical.encode()).hexdigest()}")
        sig = hmac.new(self._signing_key, to_sign.encode(), hashlib.sha256).hexdigest()
        return f"{self.scheme}://{self.host}{path}?{query}&X-Amz-Signature={sig}"


def open_store(spec: str, *, name: str, root: Path, base_url: str | Callable[[], str],
               secret: bytes,
               s3: S3Config) -> ObjectStore:
    """`file` -> a FileObjectStore in `root` served as /objects/{name}/…;
    `s3://bucket[/prefix]` -> an S3ObjectStore."""
    if spec == "file":
        return FileObjectStore(root, name, base_url, secret)
    return S3ObjectStore(spec, s3)

