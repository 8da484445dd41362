"""The one client of the host-agent API (schemas/host-agent.openapi.json), used by ``deploy`` and ``host keyscan``.

A host agent is untrusted. Every answer is read only up to a size limit, every exchange has an
overall deadline (a host that stalls, or trickles a byte now and then, fails with a timeout, never
hangs the deployer), and every malformed answer is a typed error that names the host. The agent's
shared token only creates keeps; a keep's own capability (returned at create) is what provisions,
feeds, reads and deletes it.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from enarx_pkg._internal import b64, bounded
from enarx_pkg._internal.text import printable
from enarx_pkg.errors import TransportError
from enarx_pkg.trust import HostAnswerError, Offer

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKET = re.compile(rb"[\[\]{}]")
PLATFORM = "/v1/platform"
KEEPS = "/v1/keeps"


def keep_path(keep_id: str, action: str = "") -> str:
    return f"{KEEPS}/{keep_id}" + (f"/{action}" if action else "")


@dataclass(frozen=True)
class Limits:
    """Sizes and deadlines of every host exchange (seconds; the output deadline adds the workload's limit)."""

    answer_bytes: int = 1 << 20  # JSON: ids, a public key, a platform report
    created_bytes: int = 4 << 20  # create-keep also carries base64 evidence and aux (each <= 1 MiB raw)
    refusal_bytes: int = 64 << 10  # an error answer: only its start is shown
    json_depth: int = 32  # deeper nesting in a host's answer is refused, not recursed into
    connect_s: float = 10.0
    platform_s: float = 30.0
    create_s: float = 60.0  # includes starting a keep process when the host's pool is empty
    provision_s: float = 30.0  # envelope upload until the agent starts answering
    output_margin_s: float = 30.0  # beyond the workload's own [keep] time_limit_s
    max_output_s: float | None = None  # caps the output deadline whatever the workload's limit
    delete_s: float = 10.0
    detach_s: float = 300.0  # provision until a detached keep reports its listen sockets bound
    log_bytes: int = 9 << 20  # a detached keep's sealed log (the agent keeps at most 8 MiB and the last word)


class HostTimeout(TransportError):
    """A host exchange passed its deadline (the host stalled or trickled its answer)."""


class HostRefused(TransportError):
    """The host agent answered with an error status."""


class Deadline:
    """An overall deadline for one exchange, whatever the host does with its bytes.

    A read timeout alone restarts with every byte, so a host trickling its headers or body could
    hold a request open forever. Here a timer shuts the exchange's socket down when the deadline
    passes (the socket is learnt from httpcore's ``trace`` extension; each exchange has a connection
    of its own), which ends any blocked read; the caller then raises :meth:`expired`.
    """

    def __init__(self, seconds: float, what: str, url: str) -> None:
        self.seconds, self.what, self.url = seconds, what, url
        self.fired = False
        self._sock: Any = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def __enter__(self) -> Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()

    def extensions(self) -> dict[str, Any]:
        return {"trace": self._trace}

    def _trace(self, name: str, info: dict[str, Any]) -> None:
        if name == "connection.connect_tcp.complete" and info.get("return_value") is not None:
            with self._lock:
                self._sock = info["return_value"].get_extra_info("socket")
                if self.fired:
                    self._shutdown()

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            self._shutdown()

    def _shutdown(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)

    def check(self) -> None:
        if self.fired:
            raise self.expired()

    def expired(self) -> HostTimeout:
        return HostTimeout(f"host agent did not complete {self.what} within its {self.seconds:g} s deadline",
                           url=self.url)


class HostClient:
    """One host agent. ``token`` is the agent's shared token (platform and create only)."""

    def __init__(self, url: str, token: str | None, limits: Limits | None = None) -> None:
        import httpx

        self.url = url.rstrip("/")
        self.limits = limits or Limits()
        self._token = token
        # no kept-alive connections: each exchange's deadline owns (and may shut down) its socket;
        # trust_env=False: no ~/.netrc credentials or proxy settings are offered to an untrusted host
        self._http = httpx.Client(base_url=self.url, follow_redirects=False, trust_env=False,
                                  limits=httpx.Limits(max_keepalive_connections=0),
                                  timeout=httpx.Timeout(self.limits.platform_s, connect=self.limits.connect_s))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HostClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stream_seconds(self, workload_s: float) -> float:
        """The deadline of a keep's output (and stdin) stream for a workload limited to ``workload_s``."""
        seconds = self.limits.provision_s + workload_s + self.limits.output_margin_s
        return seconds if self.limits.max_output_s is None else min(seconds, self.limits.max_output_s)

    # -- the API --------------------------------------------------------------------------------
    def platform(self) -> dict[str, Any]:
        obj = self._json("GET", PLATFORM, self.limits.answer_bytes, self.limits.platform_s, self._token)
        if not isinstance(obj, dict):
            raise HostAnswerError(f"{self.url}{PLATFORM}: the host agent's answer is not a JSON object")
        return obj

    def create(self, nonce: bytes) -> Offer:
        """Ask for a keep bound to ``nonce``; its (untrusted) offer."""
        obj = self._json("POST", KEEPS, self.limits.created_bytes, self.limits.create_s, self._token,
                         json={"nonce": b64.encode(nonce)})
        return Offer.parse(obj, self.url)

    @contextlib.contextmanager
    def provision(self, offer: Offer, sealed: bytes, output_s: float) -> Iterator[Iterator[bytes]]:
        """Send the sealed envelope; yields the keep's output as it arrives, all within ``output_s`` (the
        workload's time limit) plus the provisioning allowance and the margin."""
        path = keep_path(offer.keep_id, "provision")
        with self._exchange(self.stream_seconds(output_s), "the keep's output stream", path) as deadline, \
                self._http.stream("POST", path, content=sealed, headers=self._bearer(offer.capability),
                                  timeout=self._timeout(deadline), extensions=deadline.extensions()) as r:
            self._refusal(r, path, "refused the envelope")
            yield _timed(r.iter_raw(), deadline)

    def provision_detached(self, offer: Offer, sealed: bytes, publish: Iterable[str] = ()) -> bytes:
        """Send the envelope for a detached keep; the records it answers with once the keep's listen
        sockets are bound (frames so far, then the endpoints record) or the keep exited (its frames).
        ``publish``: the explicit port mapping, ``HOSTPORT:LISTEN`` items (the host's business: not sealed)."""
        query = urllib.parse.urlencode([("detach", "1"), *(("publish", item) for item in publish)])
        path = keep_path(offer.keep_id, "provision") + "?" + query
        return self._raw("POST", path, offer.capability, self.limits.detach_s, "the detached provision",
                         content=sealed)

    def status(self, keep_id: str, capability: str) -> dict[str, Any]:
        """A keep's state (running/exited, endpoints), for its capability holder."""
        obj = self._json("GET", keep_path(keep_id), self.limits.answer_bytes, self.limits.platform_s, capability)
        if not isinstance(obj, dict):
            raise HostAnswerError(f"{self.url}{keep_path(keep_id)}: the host agent's answer is not a JSON object")
        return obj

    def logs(self, keep_id: str, capability: str) -> bytes:
        """A detached keep's sealed frames so far, as records (opened with the session key only)."""
        return self._raw("GET", keep_path(keep_id, "logs"), capability, self.limits.platform_s, "the keep's logs")

    def confirm(self, offer: Offer) -> None:
        """Tell the agent the deployer holds the detached keep's state: only now does it outlive the
        agent's provision deadline (a keep whose deployer died before saving its state is reaped)."""
        self._command("POST", keep_path(offer.keep_id, "confirm"), offer.capability, "confirm",
                      "refused to keep the detached keep")

    def stop(self, keep_id: str, capability: str) -> None:
        """Destroy a keep; unlike :meth:`delete`, a refusal (wrong capability, no such keep) is an error."""
        self._command("DELETE", keep_path(keep_id), capability, "stop", "refused to stop the keep")

    def _command(self, method: str, path: str, capability: str, what: str, refused: str) -> None:
        """A bodiless request whose refusal is an error; the answer's body is not read."""
        with self._exchange(self.limits.delete_s, what, path) as deadline, \
                self._http.stream(method, path, headers=self._bearer(capability),
                                  timeout=self._timeout(deadline), extensions=deadline.extensions()) as r:
            self._refusal(r, path, refused)

    def stdin(self, offer: Offer, records: Iterable[bytes], workload_s: float) -> None:
        """Upload sealed stdin records in one chunked request; 404/410 mean the keep already exited."""
        path = keep_path(offer.keep_id, "stdin")
        with self._exchange(self.stream_seconds(workload_s), "the stdin upload", path) as deadline, \
                self._http.stream("POST", path, content=records, headers=self._bearer(offer.capability),
                                  timeout=self._timeout(deadline), extensions=deadline.extensions()) as r:
            if r.status_code not in (404, 410):
                self._refusal(r, path, "refused stdin")

    def delete(self, offer: Offer) -> None:
        """Destroy the keep; never fails (the agent reaps keeps at its own deadlines anyway)."""
        path = keep_path(offer.keep_id)
        with contextlib.suppress(TransportError), self._exchange(self.limits.delete_s, "delete", path) as deadline, \
                self._http.stream("DELETE", path, headers=self._bearer(offer.capability),
                                  timeout=self._timeout(deadline), extensions=deadline.extensions()):
            pass  # the answer's body is not read: an agent could make it endless

    # -- plumbing -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _exchange(self, seconds: float, what: str, path: str) -> Iterator[Deadline]:
        """One request under an overall deadline; transport failures become typed errors."""
        import httpx

        deadline = Deadline(seconds, what, self.url + path)
        try:
            with deadline:
                yield deadline
        except httpx.HTTPError as exc:
            if deadline.fired or isinstance(exc, httpx.TimeoutException):
                raise deadline.expired() from None
            from enarx_pkg._internal import neterr

            raise TransportError(f"host agent unreachable or cut off during {what}: {neterr.describe(exc)}",
                                 url=self.url + path) from None
        deadline.check()

    def _timeout(self, deadline: Deadline) -> Any:
        import httpx

        return httpx.Timeout(deadline.seconds, connect=min(self.limits.connect_s, deadline.seconds))

    @staticmethod
    def _bearer(secret: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {secret}"} if secret else {}

    def _json(self, method: str, path: str, limit: int, seconds: float, secret: str | None, **kw: Any) -> Any:
        """One request; its JSON answer, read no further than ``limit`` bytes and ``seconds``."""
        body = self._raw(method, path, secret, seconds, f"{method} {path}", limit, **kw)
        return parse_json(body, self.url + path, self.limits.json_depth)

    def _raw(self, method: str, path: str, secret: str | None, seconds: float, what: str,
             limit: int | None = None, **kw: Any) -> bytes:
        """One request; its body as bytes, read no further than ``limit`` (default: the log limit) and ``seconds``."""
        limit = self.limits.log_bytes if limit is None else limit
        with self._exchange(seconds, what, path) as deadline, \
                self._http.stream(method, path, headers=self._bearer(secret), timeout=self._timeout(deadline),
                                  extensions=deadline.extensions(), **kw) as r:
            self._refusal(r, path, "refused")
            body = bounded.read(r, limit)
        if body is None:
            raise HostAnswerError(f"{self.url}{path}: the host agent's answer is over the {limit}-byte limit")
        return body

    def _refusal(self, r: Any, path: str, what: str) -> None:
        if r.status_code < 300:
            return
        text = _error_text(bounded.read(r, self.limits.refusal_bytes))
        hint = ("pass the agent's token with --host-token-file FILE (`host serve` wrote it to DATA/agent-token, "
                "or to its --token-file)") if r.status_code == 401 else None
        raise HostRefused(f"host agent {what}: {text or '(answer too long to show)'}", url=self.url + path,
                          status=r.status_code, hint=hint)


def _timed(chunks: Iterator[bytes], deadline: Deadline) -> Iterator[bytes]:
    """The stream's chunks; one that ended because its deadline shut it down raises the timeout."""
    yield from chunks
    deadline.check()


def _error_text(body: bytes | None) -> str:
    """The start of an error answer, as printable text (a host's string may carry terminal escapes)."""
    if not body:
        return ""
    text = body[:300].decode("utf-8", "replace")
    with contextlib.suppress(ValueError, RecursionError):
        obj = json.loads(text)
        if isinstance(obj, dict) and isinstance(obj.get("error"), str):
            text = obj["error"]
    return printable(text[:200])


def parse_json(body: bytes, url: str, max_depth: int) -> Any:
    """JSON from a host, refused (typed) if it is not JSON or nests deeper than ``max_depth``."""
    if _depth(body) > max_depth:
        raise HostAnswerError(f"{url}: the host agent's answer nests deeper than {max_depth} levels")
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise HostAnswerError(f"{url}: the host agent's answer is not JSON") from None


def _depth(body: bytes) -> int:
    """Deepest bracket nesting outside strings (a cheap scan before the recursive parser runs)."""
    depth = deepest = 0
    for m in _BRACKET.finditer(_STRING.sub(b"", body)):
        if m.group() in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest
