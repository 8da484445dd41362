"""API tokens, scopes, short-lived bearer tokens and the per-request access decision.

API tokens are 256-bit random strings shown once; only their SHA-256 is stored. The docker
token flow (``/token``) exchanges one (sent as a Basic password) for a bearer token: an HMAC-signed,
short-lived grant of the intersection of what the client asked for and what the API token allows.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass, field

from registry.meta import Metadata
from registry.names import matches, valid_name
from registry.settings import Settings

ACTIONS = ("pull", "push", "delete")
TOKEN_PREFIX = "enxr_"  # noqa: S105 (a prefix, not a secret)
BEARER_PREFIX = "enxb."
_SCOPE_RE = re.compile(r"^(pull|push|delete):(\*|[a-z0-9._/-]+?(?:/\*)?)$")


class ScopeError(ValueError):
    """A scope string given to ``token create`` is not ``ACTION:PATTERN`` or ``admin``."""


def parse_scope(text: str) -> str:
    """Validate ``pull:myorg/*``, ``push:myorg/app``, ``delete:*`` or ``admin``; return it unchanged."""
    if text == "admin":
        return text
    m = _SCOPE_RE.match(text)
    if not m:
        raise ScopeError(f"scope {text!r}: expected ACTION:REPOSITORY (pull, push or delete; REPOSITORY may end "
                         "in /* or be *), or admin")
    pattern = m.group(2)
    base = pattern[:-2] if pattern.endswith("/*") else pattern
    if pattern != "*" and not valid_name(base):
        raise ScopeError(f"scope {text!r}: {base!r} is not a valid repository name")
    return text


@dataclass(frozen=True)
class Principal:
    """Who is asking, and what they may do. ``grants`` holds ``action:pattern`` strings."""

    name: str
    token_id: str | None
    grants: frozenset[str] = field(default_factory=frozenset)

    @property
    def admin(self) -> bool:
        return "admin" in self.grants

    @property
    def anonymous(self) -> bool:
        """No credentials, or a bearer token the token endpoint gave a client that sent none."""
        return self.token_id is None and self.name == ANONYMOUS_NAME

    def can(self, action: str, repo: str) -> bool:
        if self.admin:
            return True
        # push implies pull of the same repositories, as in docker's "pull,push" scope
        wanted = ("pull", "push") if action == "pull" else (action,)
        for grant in self.grants:
            act, _, pattern = grant.partition(":")
            if act in wanted and matches(pattern, repo):
                return True
        return False


ANONYMOUS_NAME = "anonymous"
ANONYMOUS = Principal(ANONYMOUS_NAME, None)


class Unauthorized(Exception):
    """Credentials were sent but are not valid (wrong, revoked, expired or malformed)."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(meta: Metadata, name: str, scopes: list[str], ttl_days: float | None) -> tuple[str, str]:
    """Make a new API token; returns (id, token). Only the hash is stored."""
    for s in scopes:
        parse_scope(s)
    token_id = secrets.token_hex(4)
    token = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
    now = time.time()
    expires = now + ttl_days * 86400 if ttl_days else None
    meta.db.execute("INSERT INTO tokens (id, name, hash, scopes, created, expires) VALUES (?, ?, ?, ?, ?, ?)",
                    (token_id, name, hash_token(token), json.dumps(scopes), now, expires))
    meta.db.execute("INSERT INTO audit (at, actor, action, repo, ref, digest, remote) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (now, "admin-cli", "token.create", None, token_id, None, json.dumps(scopes)))
    return token_id, token


def list_tokens(meta: Metadata) -> list[dict[str, object]]:
    rows = meta.db.query("SELECT id, name, scopes, created, expires, revoked FROM tokens ORDER BY created")
    return [{"id": r[0], "name": r[1], "scopes": json.loads(r[2]), "created": r[3], "expires": r[4],
             "revoked": r[5]} for r in rows]


def revoke_token(meta: Metadata, token_id: str) -> bool:
    n = meta.db.execute("UPDATE tokens SET revoked = ? WHERE id = ? AND revoked IS NULL", (time.time(), token_id))
    return bool(n)


class Authorizer:
    """Turns request credentials into a :class:`Principal` and answers access questions."""

    def __init__(self, meta: Metadata, settings: Settings) -> None:
        self.meta = meta
        self.settings = settings
        self.secret = base64.b64decode(meta.config_default("bearer_secret", base64.b64encode(
            secrets.token_bytes(32)).decode()))
        self._tokens: dict[str, tuple[float, Principal | None]] = {}
        self._anon: dict[str, tuple[float, bool]] = {}

    # -- credentials ---------------------------------------------------------------------------
    def authenticate(self, authorization: str | None) -> Principal:
        """Anonymous without credentials; :class:`Unauthorized` if credentials are given but bad."""
        if not authorization:
            return ANONYMOUS
        scheme, _, value = authorization.partition(" ")
        value = value.strip()
        if scheme.lower() == "basic":
            return self._api_token(_basic_password(value))
        if scheme.lower() == "bearer":
            if value.startswith(BEARER_PREFIX):
                return self._bearer(value)
            return self._api_token(value)
        raise Unauthorized("unsupported authorization scheme")

    def _api_token(self, token: str) -> Principal:
        key = hash_token(token)
        now = time.monotonic()
        cached = self._tokens.get(key)
        if cached is None or now - cached[0] > self.settings.cache_ttl:
            cached = (now, self._lookup(key))
            if len(self._tokens) > 10000:
                self._tokens.clear()
            self._tokens[key] = cached
        if cached[1] is None:
            raise Unauthorized("invalid, expired or revoked token")
        return cached[1]

    def _lookup(self, token_hash: str) -> Principal | None:
        rows = self.meta.db.query("SELECT id, name, scopes, expires, revoked FROM tokens WHERE hash = ?",
                                  (token_hash,))
        if not rows:
            return None
        token_id, name, scopes, expires, revoked = rows[0]
        if revoked is not None or (expires is not None and expires < time.time()):
            return None
        return Principal(f"{name} ({token_id})", token_id, frozenset(json.loads(scopes)))

    def _token_alive(self, token_id: str) -> bool:
        rows = self.meta.db.query("SELECT revoked, expires FROM tokens WHERE id = ?", (token_id,))
        return bool(rows) and rows[0][0] is None and (rows[0][1] is None or rows[0][1] > time.time())

    # -- bearer tokens -------------------------------------------------------------------------
    def issue_bearer(self, principal: Principal, grants: frozenset[str]) -> tuple[str, int]:
        payload = {"sub": principal.name, "tid": principal.token_id, "grants": sorted(grants),
                   "exp": int(time.time()) + self.settings.bearer_ttl}
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        mac = _b64(hmac.new(self.secret, body.encode(), hashlib.sha256).digest())
        return f"{BEARER_PREFIX}{body}.{mac}", self.settings.bearer_ttl

    def _bearer(self, token: str) -> Principal:
        try:
            body, mac = token[len(BEARER_PREFIX):].split(".")
            expected = _b64(hmac.new(self.secret, body.encode(), hashlib.sha256).digest())
            if not hmac.compare_digest(mac, expected):
                raise Unauthorized("bearer token signature does not match")
            payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except (ValueError, TypeError) as exc:
            raise Unauthorized("malformed bearer token") from exc
        if payload["exp"] < time.time():
            raise Unauthorized("bearer token expired")
        tid = payload.get("tid")
        if tid is not None and not self._token_alive(tid):
            raise Unauthorized("the API token behind this bearer token was revoked")
        return Principal(payload["sub"], tid, frozenset(payload["grants"]))

    def grant(self, principal: Principal, scope_params: list[str]) -> frozenset[str]:
        """What a bearer token may carry: the requested docker scopes that ``principal`` holds.

        ``repository:NAME:*`` asks for everything on NAME and gets what the principal may do there;
        ``registry:catalog:*`` carries the principal's pull patterns, so the catalog lists its repositories.
        """
        out: set[str] = set()
        for param in scope_params:
            for item in param.split(" "):
                kind, _, rest = item.partition(":")
                name, _, actions = rest.rpartition(":")
                if kind == "registry" and name == "catalog":
                    out |= _pull_patterns(principal)
                if kind != "repository" or not valid_name(name):
                    continue
                wanted = ACTIONS if "*" in actions.split(",") else actions.split(",")
                for action in wanted:
                    if action in ACTIONS and (principal.can(action, name) or
                                              (action == "pull" and self.anonymous_pull(name))):
                        out.add(f"{action}:{name}")
        return frozenset(out)

    # -- decisions -----------------------------------------------------------------------------
    def anonymous_pull_default(self) -> bool:
        """Whether anonymous pull is on for every repository without its own setting."""
        return self.settings.anonymous_pull or self.meta.config("anonymous_pull") == "1"

    def anonymous_pull(self, repo: str) -> bool:
        now = time.monotonic()
        cached = self._anon.get(repo)
        if cached is None or now - cached[0] > self.settings.cache_ttl:
            row = self.meta.repo(repo)
            if row is not None and row.anonymous_pull is not None:
                allowed = row.anonymous_pull
            else:
                allowed = self.anonymous_pull_default()
            cached = (now, allowed)
            if len(self._anon) > 10000:
                self._anon.clear()
            self._anon[repo] = cached
        return cached[1]

    def allowed(self, principal: Principal, action: str, repo: str) -> bool:
        if principal.can(action, repo):
            return True
        return action == "pull" and self.anonymous_pull(repo)


def _pull_patterns(principal: Principal) -> set[str]:
    return {"pull:" + g.partition(":")[2] for g in principal.grants if g.partition(":")[0] in ("pull", "push")}


def _basic_password(value: str) -> str:
    try:
        decoded = base64.b64decode(value, validate=True).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise Unauthorized("malformed Basic credentials") from exc
    _, sep, password = decoded.partition(":")
    if not sep:
        raise Unauthorized("malformed Basic credentials")
    return password


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
