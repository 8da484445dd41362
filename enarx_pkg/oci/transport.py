"""One HTTP exchange with a registry: auth retries, redirects by the rules, transient-failure retries.

Redirects are followed by hand (httpx's own following is off) so that the ``Authorization`` header
is only ever sent to the registry's own origin: blob GETs that redirect to object storage (S3, GCS,
a CDN) get no credentials, and neither does any other host a registry points us at. A redirect from
HTTPS to plain HTTP is refused.
"""

from __future__ import annotations

import contextlib
import json
import ssl
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from enarx_pkg._internal import bounded, neterr, roots
from enarx_pkg.errors import NotFoundError, TransportError
from enarx_pkg.oci.auth import Authenticator, AuthError, CredentialSource
from enarx_pkg.oci.rawhttp import RAW, RawTransport
from enarx_pkg.oci.reference import Registry

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
REDIRECTS = frozenset({301, 302, 303, 307, 308})
Body = bytes | Callable[[], Iterable[bytes]] | None


@dataclass(frozen=True)
class Settings:
    """Limits and tuning for one client; tests shrink the backoff, the keep may shrink the limits."""

    timeout: float = 60.0
    retries: int = 4
    backoff: float = 0.25
    max_redirects: int = 5
    read_chunk: int = 1 << 20
    upload_chunk: int = 64 << 20
    monolithic_limit: int = 64 << 20
    max_manifest_bytes: int = 4 << 20
    user_agent: str = "enarx-pkg"


class Transient(Exception):
    """A failure worth retrying (5xx, 429, connection reset); carries what to say if we give up."""

    def __init__(self, message: str, url: str, status: int | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.url, self.status, self.hint = url, status, hint

    def give_up(self) -> TransportError:
        return TransportError(str(self), url=self.url, status=self.status, hint=self.hint)


def origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port


class Transport:
    """Sends requests for one registry; owns the httpx client and the authenticator."""

    def __init__(self, registry: Registry, credentials: CredentialSource, settings: Settings) -> None:
        self.registry = registry
        self.settings = settings
        self.http = httpx.Client(
            follow_redirects=False, timeout=httpx.Timeout(settings.timeout),
            transport=_LazyTLSTransport(settings.timeout), headers={"User-Agent": settings.user_agent},
        )
        self.auth = Authenticator(registry.host, credentials, self.http)
        self._origin = origin(httpx.URL(registry.base_url))

    def close(self) -> None:
        self.http.close()

    def url(self, path: str) -> str:
        return f"{self.registry.base_url}{path}"

    @contextlib.contextmanager
    def open(self, method: str, url: str, scope: str, *, headers: dict[str, str] | None = None,
             body: Body = None, follow: bool = False, ok: Iterable[int] = (200,),
             raw: bool = False) -> Iterator[httpx.Response]:
        """Send one request (streamed response), raising a typed error unless its status is in ``ok``.

        ``raw``: a GET whose body is a blob, read in large pieces (see :mod:`enarx_pkg.oci.rawhttp`).
        """
        resp = self.send(method, url, scope, headers=headers, body=body, follow=follow, raw=raw)
        try:
            if resp.status_code not in set(ok):
                raise self.error(resp, method)
            yield resp
        finally:
            resp.close()

    def send(self, method: str, url: str, scope: str, *, headers: dict[str, str] | None = None,
             body: Body = None, follow: bool = False, raw: bool = False) -> httpx.Response:
        """Send with auth and redirects; raise :class:`Transient` for retryable failures."""
        target = httpx.URL(url)
        authorized: str | None = None
        for _hop in range(self.settings.max_redirects + 2):
            resp = self._attempt(method, target, scope, headers, body, authorized, raw)
            if self._asks_again(resp, target, authorized):
                _discard(resp)
                self.auth.forget(scope)  # a 403 with a Bearer challenge: the cached token is too narrow
                authorized = self.auth.answer(resp, scope)
                if authorized is not None:
                    resp.close()
                    resp = self._attempt(method, target, scope, headers, body, authorized, raw)
            if resp.status_code in RETRY_STATUSES:
                resp.close()
                raise Transient(f"{method} failed with HTTP {resp.status_code}", str(target), resp.status_code)
            if not (follow and resp.status_code in REDIRECTS and "location" in resp.headers):
                return resp
            resp.close()
            target = self._redirect_target(target, resp.headers["location"])
        raise TransportError(f"too many redirects from registry {self.registry.host}", url=str(url))

    def _asks_again(self, resp: httpx.Response, target: httpx.URL, authorized: str | None) -> bool:
        """401, or 403 with a Bearer challenge (registries differ on insufficient scope), answered once."""
        if authorized is not None or origin(target) != self._origin:
            return False
        if resp.status_code == 401:
            return True
        return resp.status_code == 403 and resp.headers.get("www-authenticate", "").lower().startswith("bearer")

    def _redirect_target(self, current: httpx.URL, location: str) -> httpx.URL:
        nxt = current.join(location)
        if nxt.scheme not in ("http", "https") or (current.scheme == "https" and nxt.scheme != "https"):
            raise TransportError(f"registry {self.registry.host} redirected to a non-HTTPS URL; refusing",
                                 url=str(current))
        return nxt

    def _attempt(self, method: str, target: httpx.URL, scope: str, headers: dict[str, str] | None,
                 body: Body, authorized: str | None, raw: bool = False) -> httpx.Response:
        hdrs = dict(headers or {})
        # credentials go to the registry's own origin only, never to a redirect target elsewhere
        if origin(target) == self._origin:
            auth = authorized or self.auth.header(scope)
            if auth:
                hdrs["Authorization"] = auth
        content: Any = body() if callable(body) else body
        req = self.http.build_request(method, target, headers=hdrs, content=content,
                                      extensions={RAW: True} if raw and method == "GET" else None)
        try:
            return self.http.send(req, stream=True)
        except httpx.TransportError as exc:  # timeouts included
            raise Transient(f"registry {self.registry.host}: {method} failed: {neterr.describe(exc)}", str(target),
                            hint=neterr.hint(exc)) from None

    def error(self, resp: httpx.Response, method: str) -> Exception:
        """Turn an unexpected response into a typed error naming the registry and URL, never a secret."""
        detail = _registry_error(resp)
        where = f"{self.registry.host}"
        url = str(resp.request.url)
        if resp.status_code in (401, 403):
            return self._auth_error(resp, method, detail)
        if resp.status_code == 404:
            return NotFoundError(f"not found on registry {where}: {resp.request.url.path}{detail}")
        return TransportError(f"registry {where} answered {method} unexpectedly{detail}", url=url,
                              status=resp.status_code)

    def _auth_error(self, resp: httpx.Response, method: str, detail: str) -> AuthError:
        """Refused: credentials that are wrong (log in again) or right but short of a scope (say which)."""
        where, path = self.registry.host, resp.request.url.path
        cred = self.auth.credential
        if cred is None:
            return AuthError(f"registry {where} refused anonymous access for {method} {path}{detail}",
                             hint=f"run `enarx-pkg login {where}`, or set ENARX_PKG_REGISTRY_USERNAME/PASSWORD")
        if _lacks_scope(resp, detail):
            action = "pull" if method in ("GET", "HEAD") else "delete" if method == "DELETE" else "push"
            repo = _repository(path)
            return AuthError(f"registry {where} accepted the credentials from {cred.source}, but they lack the "
                             f"{action} scope for {repo}{detail}",
                             hint=f"use a token that grants {action} on {repo} (an enarx-pkg registry token "
                                  f"needs the scope {action}:{repo})")
        return AuthError(f"registry {where} refused the credentials from {cred.source} for {method} {path}{detail}",
                         hint=f"check them, or run `enarx-pkg login {where}` with the right ones")

    def retrying(self, what: str, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` with exponential backoff on :class:`Transient` failures."""
        for attempt in range(self.settings.retries + 1):
            try:
                return fn()
            except Transient as exc:
                if attempt == self.settings.retries:
                    raise exc.give_up() from None
                time.sleep(self.settings.backoff * (2**attempt))
        raise AssertionError("unreachable")


class _LazyTLSTransport(httpx.BaseTransport):
    """Plain HTTP needs no TLS context; build the (slow to load) trust store on the first HTTPS request."""

    def __init__(self, timeout: float) -> None:
        self._plain = httpx.HTTPTransport(verify=False)  # only ever used for http:// URLs
        self._tls: httpx.HTTPTransport | None = None
        self._context: ssl.SSLContext | None = None
        self._raw = RawTransport(timeout, self._ssl_context)

    def _ssl_context(self) -> ssl.SSLContext:
        if self._context is None:
            self._context = _tls_context()
        return self._context

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.extensions.get(RAW):
            return self._raw.handle_request(request)
        if request.url.scheme != "https":
            return self._plain.handle_request(request)
        if self._tls is None:
            self._tls = httpx.HTTPTransport(verify=self._ssl_context())
        return self._tls.handle_request(request)

    def close(self) -> None:
        self._raw.close()
        self._plain.close()
        if self._tls is not None:
            self._tls.close()


def _tls_context() -> ssl.SSLContext:
    """The system trust store (what skopeo and docker use; ``SSL_CERT_FILE``/``SSL_CERT_DIR`` honoured), or
    the roots a keep pinned before it was measured (``_internal/roots.py``).

    Also cheaper than parsing certifi's bundle on every start, which matters for a CLI.
    """
    return roots.client_context()


def _discard(resp: httpx.Response) -> None:
    """Read a small declared body (kept for the error message); any other is left for the close to drop."""
    declared = resp.headers.get("content-length", "")
    if declared.isdigit() and int(declared) <= 65536:
        with contextlib.suppress(httpx.HTTPError, httpx.StreamError):
            resp.read()


def _lacks_scope(resp: httpx.Response, detail: str) -> bool:
    """403, or a 401 that says ``insufficient_scope`` / DENIED: who we are is fine, what we ask is not."""
    challenge = resp.headers.get("www-authenticate", "").lower()
    return resp.status_code == 403 or "insufficient_scope" in challenge or "(denied:" in detail.lower()


def _repository(path: str) -> str:
    """``team/app`` from ``/v2/team/app/blobs/uploads/...``."""
    parts = path.removeprefix("/v2/").split("/")
    for i, part in enumerate(parts):
        if part in ("manifests", "blobs", "tags", "referrers"):
            return "/".join(parts[:i]) or path
    return path


MAX_REGISTRY_MESSAGE = 500


def _registry_error(resp: httpx.Response) -> str:
    """The registry's own error code and message (short, printable), if its body carries one."""
    try:
        data = resp.content if resp.is_stream_consumed else bounded.read(resp, 65536)
        if data is None or len(data) > 65536:
            return ""
        errors = json.loads(data).get("errors") or []
        first = errors[0]
        text = f"{first.get('code', '')}: {first.get('message', '')}"
    except (ValueError, AttributeError, IndexError, TypeError, httpx.HTTPError, httpx.StreamError):
        return ""
    text = "".join(c for c in text if c.isprintable())
    if len(text) > MAX_REGISTRY_MESSAGE:  # long enough for a registry's advice; cut visibly, never mid-advice
        text = text[:MAX_REGISTRY_MESSAGE - 1] + "…"
    return f" ({text})" if text.strip(": ") else ""
