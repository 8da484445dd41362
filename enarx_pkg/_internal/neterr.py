"""What a failed connection means, in words: refused, name not resolved, TLS, timed out.

httpx (and the raw transport, which raises httpx's types) wraps the socket error; its text is all
that survives, so the kind is read from the exception type where it tells and from the text where
only that does. Messages name no secret: they come from the OS and TLS library, never a request.
"""

from __future__ import annotations

import ssl

import httpx

_REFUSED = ("connection refused", "connectionrefusederror", "errno 111")
_NO_NAME = ("name or service not known", "nodename nor servname", "temporary failure in name resolution",
            "gaierror", "no address associated", "errno -2", "errno -3", "errno -5")
_TLS_PLAIN = ("wrong_version_number", "wrong version number", "record layer failure", "packet length too long")
_TLS_CERT = ("certificate_verify_failed", "certificate verify failed", "sslcertverificationerror",
             "hostname mismatch")


def describe(exc: BaseException) -> str:
    """A short phrase for why a request could not be made, e.g. ``connection refused``."""
    text = _texts(exc)
    if isinstance(exc, httpx.ConnectTimeout):
        return "connection timed out (no answer to the connection attempt)"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out waiting for the server to answer"
    if any(k in text for k in _REFUSED):
        return "connection refused (nothing is listening at that address and port)"
    if any(k in text for k in _NO_NAME):
        return "host name not resolved (no such host, or DNS is unreachable)"
    if any(k in text for k in _TLS_PLAIN):
        return "TLS failure: the server does not speak TLS on that port (plain HTTP?)"
    if any(k in text for k in _TLS_CERT):
        return f"TLS failure: the server's certificate is not trusted ({_reason(exc)})"
    if "ssl" in text or "tls" in text or _has(exc, ssl.SSLError):
        return f"TLS failure ({_reason(exc)})"
    if isinstance(exc, (httpx.ReadError, httpx.RemoteProtocolError)):
        return f"the connection broke ({_reason(exc)})"
    return _reason(exc)


def hint(exc: BaseException) -> str | None:
    """What to try, where the failure suggests something."""
    what = describe(exc)
    if what.startswith("TLS failure: the server does not speak TLS"):
        return "if the registry serves plain HTTP, pass --plain-http (or use an http:// URL)"
    if what.startswith("connection refused"):
        return "check the host and port, and that the server is running"
    if what.startswith("host name not resolved"):
        return "check the spelling of the host name"
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen and len(seen) < 8:
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return seen


def _texts(exc: BaseException) -> str:
    return " ".join(f"{type(e).__name__} {e}" for e in _chain(exc)).lower()


def _has(exc: BaseException, kind: type[BaseException]) -> bool:
    return any(isinstance(e, kind) for e in _chain(exc))


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
