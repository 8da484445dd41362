"""Blobs in an S3-compatible object store (AWS S3, OpenStack Swift's s3api, MinIO, Ceph RGW).

Keys under the bucket prefix: ``blobs/sha256/<2 hex>/<64 hex>`` for committed blobs (as on the
filesystem) and ``uploads/<upload id>`` for an upload that had to be assembled before its digest
could be checked. Credentials come from the standard AWS chain (environment variables, shared
config/credentials files, instance roles): never from the command line.

Only the digest-named key is ever served, and a key of that form is written only with bytes that
were hashed on their way in (or re-read and hashed after an assembly), so a client's claim never
names an object.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from registry.names import DIGEST_RE

MIN_PART = 5 << 20  # S3's smallest multipart part (all but the last)
COPY_LIMIT = 5 << 30  # the largest object one CopyObject may copy
COPY_PART = 1 << 30
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
_PREFIX_RE = re.compile(r"^[A-Za-z0-9._\-/]{0,200}$")


class StoreUnavailable(Exception):
    """The object store could not be reached or refused the request (answered as 503 + Retry-After)."""


class StoreConfigError(Exception):
    """The store's configuration or credentials are wrong (the server refuses to start)."""


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str = ""  # "" or "some/path/" (always ends with '/')

    @classmethod
    def parse(cls, url: str) -> S3Location:
        """``s3://BUCKET[/PREFIX]``: bucket names per S3's rules, a plain prefix without '..'."""
        parts = urlsplit(url)
        if parts.scheme != "s3" or parts.query or parts.fragment or not parts.netloc:
            raise StoreConfigError(f"--storage {url!r}: expected s3://BUCKET[/PREFIX]")
        bucket, prefix = parts.netloc, parts.path.strip("/")
        if not _BUCKET_RE.match(bucket):
            raise StoreConfigError(f"--storage {url!r}: {bucket!r} is not a valid bucket name")
        if not _PREFIX_RE.match(prefix) or ".." in prefix.split("/"):
            raise StoreConfigError(f"--storage {url!r}: prefix {prefix!r} may hold letters, digits, . _ - / only")
        return cls(bucket, prefix + "/" if prefix else "")


def _client_error_message(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Message", ""))[:200]


def _client_error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


class S3Store:
    """Object operations the registry needs, with S3/transport failures turned into two exception types."""

    def __init__(self, location: S3Location, endpoint: str | None = None, region: str | None = None,
                 client: Any = None) -> None:
        self.location = location
        self._client = client or _make_client(endpoint, region)

    # -- keys -------------------------------------------------------------------------------------

    def blob_key(self, digest: str) -> str:
        if not DIGEST_RE.match(digest):
            raise ValueError("invalid digest")
        hexpart = digest[7:]
        return f"{self.location.prefix}blobs/sha256/{hexpart[:2]}/{hexpart}"

    def upload_key(self, upload_id: str) -> str:
        if not re.fullmatch(r"[a-f0-9]{32}", upload_id):
            raise ValueError("invalid upload id")
        return f"{self.location.prefix}uploads/{upload_id}"

    # -- calls ------------------------------------------------------------------------------------

    def _call(self, op: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self._client, op)(Bucket=self.location.bucket, **kwargs)
        except ClientError as exc:
            code = _client_error_code(exc)
            if code in ("NoSuchKey", "404", "NotFound", "NoSuchUpload"):
                raise KeyError(kwargs.get("Key", "")) from None
            if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403", "NoSuchBucket"):
                why = "the store refused these credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the AWS " \
                      "config files)" if code != "NoSuchBucket" else "no such bucket"
                raise StoreConfigError(f"object store refused {op}: {code} {_client_error_message(exc)}: {why}") \
                    from None
            raise StoreUnavailable(f"object store {op} failed: {code or exc}") from None
        except BotoCoreError as exc:
            raise StoreUnavailable(f"object store unreachable during {op}: {type(exc).__name__}") from None

    def check(self) -> None:
        """At start-up: the bucket exists and these credentials may use it (else StoreConfigError)."""
        try:
            self._call("head_bucket")
        except KeyError:
            raise StoreConfigError(f"bucket {self.location.bucket!r} does not exist") from None

    def size(self, digest: str) -> int | None:
        try:
            head = self._call("head_object", Key=self.blob_key(digest))
        except KeyError:
            return None
        return int(head["ContentLength"])

    def read(self, digest: str, limit: int) -> bytes | None:
        """A small blob (manifest, bundle, Enarx.toml); None if absent or larger than ``limit``."""
        try:
            obj = self._call("get_object", Key=self.blob_key(digest), Range=f"bytes=0-{limit}")
        except KeyError:
            return None
        data: bytes = obj["Body"].read(limit + 1)
        return data if len(data) <= limit else None

    def write_small(self, digest: str, data: bytes) -> None:
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise ValueError("content does not hash to its digest")
        self.put_object(self.blob_key(digest), data)

    def put_object(self, key: str, data: bytes) -> None:
        md5 = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
        self._call("put_object", Key=key, Body=data, ContentMD5=md5)

    def object_size(self, key: str) -> int | None:
        try:
            return int(self._call("head_object", Key=key)["ContentLength"])
        except KeyError:
            return None

    def list_objects(self, prefix: str) -> Iterator[tuple[str, float]]:
        """(key, last-modified epoch) of every object under ``prefix``."""
        token: str | None = None
        while True:
            page = self._call("list_objects_v2", Prefix=prefix, **({"ContinuationToken": token} if token else {}))
            for item in page.get("Contents", []):
                yield item["Key"], item["LastModified"].timestamp()
            if not page.get("IsTruncated"):
                return
            token = page.get("NextContinuationToken")

    def concatenate(self, pieces: list[tuple[str, int]], sink: Callable[[bytes], None]) -> str:
        """Feed the first ``length`` bytes of each object to ``sink`` in order; the sha256 of all of them."""
        h = hashlib.sha256()
        for key, length in pieces:
            if length == 0:
                continue
            obj = self._call("get_object", Key=key, Range=f"bytes=0-{length - 1}")
            body, remaining = obj["Body"], length
            try:
                while remaining:
                    piece = body.read(min(remaining, 1 << 20))
                    if not piece:
                        raise StoreUnavailable(f"object {key.rsplit('/', 1)[-1]} is shorter than its committed length")
                    h.update(piece)
                    sink(piece)
                    remaining -= len(piece)
            finally:
                body.close()
        return "sha256:" + h.hexdigest()

    def stream(self, digest: str, start: int, end: int, chunk: int = 1 << 20) -> Iterator[bytes]:
        """Bytes ``start..end`` (inclusive) of a blob."""
        obj = self._call("get_object", Key=self.blob_key(digest), Range=f"bytes={start}-{end}")
        body = obj["Body"]
        try:
            while piece := body.read(chunk):
                yield piece
        finally:
            body.close()

    def presigned_get(self, digest: str, ttl_s: int) -> str:
        url: str = self._client.generate_presigned_url(
            "get_object", Params={"Bucket": self.location.bucket, "Key": self.blob_key(digest)}, ExpiresIn=ttl_s)
        return url

    def delete(self, key: str) -> None:
        self._call("delete_object", Key=key)

    def list_blobs(self) -> Iterator[tuple[str, float]]:
        """(digest, last-modified epoch) of every committed blob."""
        for key, mtime in self.list_objects(f"{self.location.prefix}blobs/sha256/"):
            name = key.rsplit("/", 1)[-1]
            if re.fullmatch(r"[a-f0-9]{64}", name):
                yield "sha256:" + name, mtime

    # -- multipart ---------------------------------------------------------------------------------

    def start_multipart(self, key: str) -> str:
        answer = self._call("create_multipart_upload", Key=key)
        return str(answer["UploadId"])

    def put_part(self, key: str, multipart_id: str, number: int, data: bytes) -> str:
        md5 = hashlib.md5(data, usedforsecurity=False).digest()  # the store checks the part arrived whole
        answer = self._call("upload_part", Key=key, UploadId=multipart_id, PartNumber=number, Body=data,
                            ContentMD5=base64.b64encode(md5).decode())
        return str(answer["ETag"])

    def complete_multipart(self, key: str, multipart_id: str, etags: list[str]) -> None:
        parts = [{"ETag": etag, "PartNumber": i + 1} for i, etag in enumerate(etags)]
        self._call("complete_multipart_upload", Key=key, UploadId=multipart_id, MultipartUpload={"Parts": parts})

    def abort_multipart(self, key: str, multipart_id: str) -> None:
        with contextlib.suppress(KeyError):  # already gone: finished or aborted by another replica
            self._call("abort_multipart_upload", Key=key, UploadId=multipart_id)

    def open_multiparts(self) -> Iterator[tuple[str, str, float]]:
        """(key, multipart id, started epoch) of every multipart upload open under our prefix."""
        answer = self._call("list_multipart_uploads", Prefix=self.location.prefix)
        for item in answer.get("Uploads", []):
            yield item["Key"], item["UploadId"], item["Initiated"].timestamp()

    def copy(self, source_key: str, target_key: str) -> None:
        """Server-side copy: one CopyObject up to 5 GiB, UploadPartCopy of 1 GiB ranges beyond."""
        size = self.object_size(source_key)
        if size is None:
            raise StoreUnavailable(f"object {source_key.rsplit('/', 1)[-1]} vanished before it could be copied")
        source = {"Bucket": self.location.bucket, "Key": source_key}
        if size <= COPY_LIMIT:
            self._call("copy_object", Key=target_key, CopySource=source)
            return
        multipart = self.start_multipart(target_key)
        try:
            etags = []
            for number, start in enumerate(range(0, size, COPY_PART), 1):
                end = min(start + COPY_PART, size) - 1
                answer = self._call("upload_part_copy", Key=target_key, UploadId=multipart, PartNumber=number,
                                    CopySource=source, CopySourceRange=f"bytes={start}-{end}")
                etags.append(str(answer["CopyPartResult"]["ETag"]))
            self.complete_multipart(target_key, multipart, etags)
        except BaseException:
            self.abort_multipart(target_key, multipart)
            raise


def _make_client(endpoint: str | None, region: str | None) -> Any:
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise StoreConfigError("--storage s3:// needs boto3 (pip install 'enarx-pkg[s3]')") from None
    config = Config(s3={"addressing_style": "path"}, request_checksum_calculation="when_required",
                    response_checksum_validation="when_required", retries={"max_attempts": 3, "mode": "standard"},
                    connect_timeout=5, read_timeout=60, max_pool_connections=32)
    client = boto3.client("s3", endpoint_url=endpoint, region_name=region or "us-east-1", config=config)
    client.meta.events.register("before-call.s3.DeleteObjects", _add_content_md5)
    return client


def _add_content_md5(params: dict[str, Any], **_: Any) -> None:
    # Swift's s3api (and S3 itself for DeleteObjects) requires Content-MD5; boto3 >= 1.36 stopped sending it
    body = params.get("body", b"")
    if isinstance(body, bytes) and "Content-MD5" not in params["headers"]:
        params["headers"]["Content-MD5"] = base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode()
