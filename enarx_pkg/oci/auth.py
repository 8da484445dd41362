"""Registry authentication: anonymous, Basic, and the docker/OCI Bearer token flow.

The token flow (distribution's "token authentication specification"): a request answered ``401`` with
``WWW-Authenticate: Bearer realm="...",service="...",scope="..."`` is retried with a token obtained
by ``GET realm?service=...&scope=...`` (Basic credentials attached when we have them). Tokens are
cached per (realm, service, scope), so a push touching one repository asks for a token once.

Secrets stay inside :class:`Credential` (its ``repr`` hides them) and never reach a message.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

from enarx_pkg._internal import bounded
from enarx_pkg.errors import Error, ExitCode, TransportError
from enarx_pkg.oci.reference import is_loopback

MAX_TOKEN_RESPONSE = 1 << 20


class AuthError(Error):
    """The registry refused our credentials (or demanded some we do not have).

    Exit code 77 (refused), not 69: retrying will not help, a person has to fix the credentials.
    """

    exit_code = ExitCode.VERIFICATION_REFUSED


@dataclass(frozen=True)
class Credential:
    """A username and password (or registry token used as a password); ``repr`` hides the secret."""

    username: str
    password: str = field(repr=False)
    source: str = "unknown"
    # set for a keep's sealed credential: the registry origin (scheme://host[:port]) it was sealed for,
    # the only one it is ever presented to (a token realm elsewhere is refused, not sent it)
    origin: str | None = None

    def allows(self, url: str) -> bool:
        """May this credential be presented to ``url``?"""
        return self.origin is None or same_origin(url, self.origin)

    def basic(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


def same_origin(a: str, b: str) -> bool:
    """Same scheme, host and port (default ports filled in)."""
    def key(url: str) -> tuple[str, str, int | None]:
        u = httpx.URL(url)
        return u.scheme, u.host, u.port or {"http": 80, "https": 443}.get(u.scheme)

    try:
        return key(a) == key(b)
    except httpx.InvalidURL:
        return False


CredentialSource = Callable[[str], Credential | None]
"""Looks up credentials by registry host (``host[:port]``); ``None`` means anonymous."""


def anonymous(_host: str) -> Credential | None:
    return None


def static(host: str, credential: Credential) -> CredentialSource:
    """A source holding one credential for one host (what the keep is handed in its sealed envelope)."""
    return lambda h: credential if h == host else None


_PARAM = re.compile(r'([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


@dataclass(frozen=True)
class Challenge:
    scheme: str
    params: dict[str, str]


def parse_challenge(header: str) -> Challenge | None:
    """Parse one ``WWW-Authenticate`` value (``Basic realm=...`` or ``Bearer realm=...,...``)."""
    header = header.strip()
    if not header:
        return None
    scheme, _, rest = header.partition(" ")
    params = {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3))
              for m in _PARAM.finditer(rest)}
    return Challenge(scheme.lower(), {k: v.replace('\\"', '"') for k, v in params.items()})


@dataclass
class _Token:
    value: str
    expires: float


class Authenticator:
    """Holds the state of the auth dance for one registry host: scheme seen, cached tokens."""

    def __init__(self, host: str, credentials: CredentialSource, http: httpx.Client) -> None:
        self.host = host
        self._credentials = credentials
        self._http = http
        self._scheme: str | None = None  # learnt from the first challenge
        self._bearer: dict[str, Challenge] = {}
        self._tokens: dict[tuple[str, str, str], _Token] = {}
        self._looked_up = False
        self._credential: Credential | None = None

    @property
    def credential(self) -> Credential | None:
        if not self._looked_up:
            self._credential = self._credentials(self.host)
            self._looked_up = True
        return self._credential

    def header(self, scope: str) -> str | None:
        """The ``Authorization`` value to send up front for ``scope``, if we already know one."""
        if self._scheme == "basic" and self.credential:
            return self.credential.basic()
        if self._scheme == "bearer":
            ch = self._bearer.get(scope) or self._bearer.get("")
            if ch is not None:
                tok = self._tokens.get(self._key(ch, scope))
                if tok and tok.expires > time.monotonic():
                    return "Bearer " + tok.value
                if scope:  # same token service, new scope (e.g. push after pull): ask now, skip a 401
                    return "Bearer " + self._fetch_token(ch, scope)
        return None

    def forget(self, scope: str) -> None:
        """Drop the cached token for ``scope`` (the registry refused it: ask the token service again)."""
        ch = self._bearer.get(scope) or self._bearer.get("")
        if ch is not None:
            self._tokens.pop(self._key(ch, scope), None)

    def answer(self, response: httpx.Response, scope: str) -> str | None:
        """Given a 401, return the header to retry with, or ``None`` when there is nothing to try."""
        ch = parse_challenge(response.headers.get("www-authenticate", ""))
        if ch is None:
            return None
        self._scheme = ch.scheme
        if ch.scheme == "basic":
            return self.credential.basic() if self.credential else None
        if ch.scheme != "bearer" or "realm" not in ch.params:
            raise AuthError(f"registry {self.host} asks for unsupported authentication {ch.scheme!r}")
        self._bearer[scope] = ch
        self._bearer.setdefault("", ch)
        return "Bearer " + self._fetch_token(ch, scope)

    @staticmethod
    def _key(ch: Challenge, scope: str) -> tuple[str, str, str]:
        # keyed by what the operation needs: a challenge from a pull must not satisfy a push
        return ch.params.get("realm", ""), ch.params.get("service", ""), scope or ch.params.get("scope", "")

    def _fetch_token(self, ch: Challenge, scope: str) -> str:
        realm = ch.params["realm"]
        parts = urlsplit(realm)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise AuthError(f"registry {self.host} names an invalid token realm")
        query: list[tuple[str, str | int | float | bool | None]] = []
        if "service" in ch.params:
            query.append(("service", ch.params["service"]))
        # ask for what this operation needs, plus what the registry said it wants if that differs
        # (repeated scope parameters, as docker's token protocol allows)
        for wanted in dict.fromkeys(x for x in (scope, ch.params.get("scope", "")) if x):
            query.append(("scope", wanted))
        headers = {}
        cred = self.credential
        if cred is not None and not cred.allows(realm):
            raise AuthError(f"registry {self.host} sends its token requests to {parts.netloc}, another origin; "
                            f"the credential from {cred.source} is only presented to {cred.origin}")
        if cred is not None:
            if parts.scheme != "https" and not is_loopback(parts.netloc):
                raise AuthError(f"registry {self.host} wants credentials sent over plain HTTP to {parts.netloc}; "
                                "refusing")
            headers["Authorization"] = cred.basic()
        token = self._request_token(realm, query, headers)
        self._tokens[self._key(ch, scope)] = token
        return token.value

    def _request_token(self, realm: str, query: list[tuple[str, str | int | float | bool | None]],
                       headers: dict[str, str]) -> _Token:
        try:
            with self._http.stream("GET", realm, params=query, headers=headers) as r:
                status = r.status_code
                data = bounded.read(r, MAX_TOKEN_RESPONSE) if status == 200 else b""
        except httpx.HTTPError as exc:
            raise TransportError(f"token service of {self.host} unreachable: {type(exc).__name__}",
                                 url=realm) from None
        if status in (401, 403):
            raise AuthError(f"registry {self.host} refused the credentials"
                            + (f" from {self.credential.source}" if self.credential else " (none were given)"),
                            hint=f"check them, or run `enarx-pkg login {self.host}` with the right ones"
                            if self.credential else f"run `enarx-pkg login {self.host}`")
        if status != 200 or data is None:  # None: over the limit, stopped reading
            raise TransportError(f"token service of {self.host} failed", url=realm, status=status)
        try:
            body = json.loads(data)
            value = body.get("token") or body.get("access_token")
            ttl = int(body.get("expires_in", 60))
        except (ValueError, AttributeError, TypeError):
            value, ttl = None, 0
        if not isinstance(value, str) or not value:
            raise TransportError(f"token service of {self.host} returned no token", url=realm)
        # refresh a little early so a token never expires in the middle of a request
        return _Token(value, time.monotonic() + max(ttl - 10, 1))
