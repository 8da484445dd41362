"""The host agent's HTTP API (schemas/host-agent.openapi.json): it creates keeps and relays bytes.

The agent holds no secret of any deployer: it sees the nonce, the keep's public key and evidence,
the HPKE-sealed envelope and AES-GCM-sealed frames, all of which it passes through unread.

Tenants: the agent's shared token only reports the platform and creates keeps. Each keep gets its
own capability, a random secret returned once by create (the agent keeps only its SHA-256); only
that capability provisions the keep, feeds its stdin and deletes it, so holders of the shared token
cannot touch each other's keeps. A wrong capability and an unknown keep get the same 404.

Detached keeps (``provision?detach=1``): the answer ends once the keep reports its listen sockets
bound (or exits); once the deployer confirms it saved the keep's state (``/confirm``, within the
provision deadline), the keep runs on, its sealed frames kept in a bounded log that only its
capability reads (``/logs``), until it is deleted, its lifetime ends or the agent stops. Its listen
sockets are bound by the keep process itself on loopback ports of the agent's publish range: clients
connect to them directly, and the agent relays no byte of that traffic.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from enarx_pkg._internal import bounded, seal
from enarx_pkg.errors import UsageError, VerificationError
from enarx_pkg.host.pool import KeepCommand, KeepProcess, Pool
from enarx_pkg.network import parse_mapping

CREATE_TIMEOUT_S = 10.0
STOP_WAIT_S = 5.0  # a killed keep's exit, awaited before DELETE answers (less than the client's delete_s)
KEEP_ROUTES = "/v1/keeps/"  # a keep's own routes: its capability, checked by the handler; all else: the token
NO_SUCH_KEEP = "no keep with this id and capability"
MAX_CREATE_BYTES = 4096  # {"nonce": base64 of 32 bytes} with room to spare
MAX_LOG_BYTES = 8 << 20  # sealed frames kept per detached keep; past it only exit/error frames are kept


@dataclass(frozen=True)
class HostSettings:
    """Limits and identity of one agent."""

    command: KeepCommand
    token: str
    sim_fingerprint: str | None = None
    pool_size: int = 2
    max_keeps: int = 16
    provision_deadline_s: float = 30.0  # a created keep must be provisioned (a detached one: confirmed) this soon
    lifetime_s: float = 3600.0  # no keep outlives this
    max_envelope_bytes: int = seal.MAX_ENVELOPE_BYTES + 1024


@dataclass
class Keep:
    process: KeepProcess
    capability_hash: bytes = b""  # SHA-256 of the keep's capability (the secret itself is not kept)
    created: float = field(default_factory=time.monotonic)
    claimed: bool = False  # a provision request has begun: no other may (set once, under Agent.lock)
    provisioned: bool = False  # the envelope went to the keep
    detached: bool = False  # runs on without its deployer; its frames go to ``log``
    log: bytearray = field(default_factory=bytearray)  # records of sealed frames, in order
    dropped: int = 0  # frames not kept because the log was full
    endpoints: list[Any] | None = None  # what the keep reported bound (None: not yet)
    answered: float | None = None  # when the deployer was sent the endpoints (detached keeps)
    confirmed: bool = False  # the deployer saved the keep's state and said so: the keep may run on
    exited: bool = False
    settled: asyncio.Event = field(default_factory=asyncio.Event)  # endpoints reported, or the keep exited


class Agent:
    def __init__(self, settings: HostSettings) -> None:
        self.settings = settings
        self.pool = Pool(settings.command, settings.pool_size)
        self.keeps: dict[str, Keep] = {}
        self.creating = 0  # create-keep requests waiting for a pooled keep: they count against max_keeps
        self.lock = threading.Lock()
        self._reaper: asyncio.Task[None] | None = None
        self.tasks: set[asyncio.Task[None]] = set()  # detached keeps' log collectors

    async def startup(self) -> None:
        self.pool.fill()
        self._reaper = asyncio.create_task(self._reap_forever())

    async def shutdown(self) -> None:
        if self._reaper:
            self._reaper.cancel()
        self.pool.close()
        keeps = list(self.keeps.values())
        for keep_id in list(self.keeps):
            self.destroy(keep_id)
        for keep in keeps:  # reaped before the agent exits: no keep outlives its agent
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(keep.process.proc.wait(), 10)

    def destroy(self, keep_id: str) -> bool:
        keep = self.keeps.pop(keep_id, None)
        if keep is None:
            return False
        keep.process.kill()
        return True

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for keep_id, keep in list(self.keeps.items()):
                age = now - keep.created
                late = not keep.provisioned and age > self.settings.provision_deadline_s
                gone = keep.process.proc.returncode is not None and not keep.detached  # detached: logs stay
                unheld = keep.answered is not None and not keep.confirmed and \
                    now - keep.answered > self.settings.provision_deadline_s  # its deployer died holding nothing
                if late or unheld or age > self.settings.lifetime_s or gone:
                    self.destroy(keep_id)

    def keep_for(self, request: Request) -> Keep | None:
        """The keep named in the path, if the request carries its capability; None otherwise."""
        keep = self.keeps.get(request.path_params["keep_id"])
        scheme, _, secret = request.headers.get("authorization", "").partition(" ")
        presented = hashlib.sha256(secret.encode()).digest()
        if keep is None or scheme.lower() != "bearer" or not hmac.compare_digest(presented, keep.capability_hash):
            return None
        return keep

    def claim(self, request: Request) -> Keep | int:
        """Make the keep provisionable by this request only: the keep, or 404 / 409.

        The check and the set happen together under the lock, before the envelope is awaited, so two
        simultaneous provision requests cannot both see an unclaimed keep.
        """
        with self.lock:
            keep = self.keep_for(request)
            if keep is None:
                return 404
            if keep.claimed:
                return 409
            keep.claimed = True
            return keep

    def authorised(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.encode(), self.settings.token.encode())


def _problem(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def platform(request: Request) -> Response:
    agent: Agent = request.app.state.agent
    s = agent.settings
    return JSONResponse({
        "backend": s.command.backend, "sim_key_fingerprint": s.sim_fingerprint,
        "measurement": agent.pool.measurement or await agent.pool.first_ready(),
        "keeps": {"active": len(agent.keeps), "max": s.max_keeps},
        "limits": {"envelope_bytes": s.max_envelope_bytes, "frame_bytes": seal.MAX_FRAME_BYTES,
                   "provision_deadline_s": s.provision_deadline_s, "lifetime_s": s.lifetime_s},
    })


async def create_keep(request: Request) -> Response:
    agent: Agent = request.app.state.agent
    body = await bounded.request_body(request, MAX_CREATE_BYTES)
    nonce = None if body is None else _nonce(body)
    if nonce is None:
        return _problem(400, "body must be JSON {\"nonce\": base64 of 32 bytes}")
    if len(agent.keeps) + agent.creating >= agent.settings.max_keeps:
        return _problem(503, f"this host runs its maximum of {agent.settings.max_keeps} keeps; retry later")
    agent.creating += 1  # held across the wait, so concurrent requests cannot all pass the check above
    try:
        process = await agent.pool.take()
    finally:
        agent.creating -= 1
    keep_id, capability = secrets.token_hex(16), secrets.token_urlsafe(32)
    agent.keeps[keep_id] = Keep(process, hashlib.sha256(capability.encode()).digest())
    try:
        await process.send(seal.R_CREATE, json.dumps({"keep_id": keep_id, "nonce": nonce}).encode())
        kind, payload = await asyncio.wait_for(process.receive(), CREATE_TIMEOUT_S)
    except (TimeoutError, EOFError, ConnectionError):
        agent.destroy(keep_id)
        return _problem(500, "the keep did not produce evidence")
    if kind != seal.R_CREATED:
        agent.destroy(keep_id)
        return _problem(500, f"the keep failed: {payload[:300].decode(errors='replace')}")
    return JSONResponse({**json.loads(payload), "keep_id": keep_id, "capability": capability}, status_code=201)


def _nonce(body: bytes) -> str | None:
    try:
        obj = json.loads(body)
        nonce = obj["nonce"]
        if len(base64.b64decode(nonce, validate=True)) == seal.NONCE_BYTES:
            return str(nonce)
    except (ValueError, KeyError, TypeError, binascii.Error):
        pass
    return None


async def provision(request: Request) -> Response:
    """Hand the sealed envelope to the keep; the response streams the keep's sealed frames."""
    agent: Agent = request.app.state.agent
    keep_id = request.path_params["keep_id"]
    keep = agent.claim(request)
    if keep == 404:
        return _problem(404, NO_SUCH_KEEP)
    if not isinstance(keep, Keep):
        return _problem(409, f"keep {keep_id} is already provisioned")
    envelope = await bounded.request_body(request, agent.settings.max_envelope_bytes)
    if envelope is None:
        agent.destroy(keep_id)  # it was claimed, so it can never be provisioned now
        return _problem(413, f"sealed envelope is over the {agent.settings.max_envelope_bytes}-byte limit")
    if agent.keeps.get(keep_id) is not keep:
        return _problem(404, f"keep {keep_id} was destroyed while its envelope arrived")
    keep.provisioned = True
    keep.detached = request.query_params.get("detach") == "1"
    mapping = request.query_params.getlist("publish")
    refusal = _refuse_mapping(mapping, keep.detached, agent.settings.command.publish)
    if refusal:
        agent.destroy(keep_id)  # claimed, so never provisionable now: nothing is left running
        return _problem(400, refusal)
    if mapping:
        await keep.process.send(seal.R_PUBLISH, json.dumps({"publish": mapping}).encode())
    await keep.process.send(seal.R_PROVISION, envelope)
    if keep.detached:
        return await _detach(request, agent, keep_id, keep)
    return StreamingResponse(_relay(agent, keep_id, keep), media_type="application/octet-stream")


def _refuse_mapping(items: list[str], detached: bool, publish: tuple[int, int]) -> str:
    """Why the deployer's explicit port mapping (``publish=HOSTPORT:LISTEN``) is refused ("" if it is not).

    Host ports must lie in the operator's ``--publish-range``; whether LISTEN names a declared listen
    file is checked by the keep, which alone reads the (possibly encrypted) Enarx.toml, and a port in
    use fails the keep's bind, which ends the deploy."""
    if not items:
        return ""
    low, high = publish
    try:
        mapping = parse_mapping(items, "publish")
    except UsageError as exc:
        return exc.message
    if not detached:
        return "a port mapping (publish) goes with a detached keep (detach=1) only"
    if not low:
        return "this host has no publish range (host serve --publish-range): it maps no chosen ports"
    outside = [port for _, port in mapping if not low <= port <= high]
    if outside:
        return f"host port {outside[0]} is outside this host's publish range {low}-{high}"
    return ""


async def _detach(request: Request, agent: Agent, keep_id: str, keep: Keep) -> Response:
    """Once the keep reports its listen sockets (or exits): the frames so far and the endpoints record.

    A keep that exits first is destroyed; its sealed frames (the error) still go to the deployer. A
    deployer that goes away before that gets nothing running either: no one would hold its state. Nor
    does one that goes away after the answer left but before it confirmed (``/confirm``) that it saved
    the keep's state: an unconfirmed keep is reaped at the provision deadline, counted from the answer."""
    task = asyncio.create_task(_collect(keep))
    agent.tasks.add(task)
    task.add_done_callback(agent.tasks.discard)
    if not await _settled_unless_gone(request, keep):
        agent.destroy(keep_id)
        return Response(status_code=499)
    body = bytes(keep.log)
    if keep.endpoints is None:
        agent.destroy(keep_id)
    else:
        body += seal.record(seal.R_LISTENING, json.dumps({"endpoints": keep.endpoints}).encode())
        keep.answered = time.monotonic()  # from now the deployer has the provision deadline to confirm
    return Response(body, media_type="application/octet-stream")


async def _settled_unless_gone(request: Request, keep: Keep) -> bool:
    """True once the keep settled; False if the deployer disconnected first."""
    waiter = asyncio.create_task(keep.settled.wait())
    try:
        while True:
            done, _ = await asyncio.wait({waiter}, timeout=0.5)
            if done:
                return True
            if await request.is_disconnected():
                return False
    finally:
        waiter.cancel()


async def _collect(keep: Keep) -> None:
    """Keep a detached keep's sealed frames (bounded) until it exits."""
    try:
        while True:
            kind, payload = await keep.process.receive()
            if kind == seal.R_LISTENING and keep.endpoints is None:
                keep.endpoints = _endpoints(payload)
                keep.settled.set()
            elif kind in (seal.R_FRAME, seal.R_FAIL):
                _log(keep, kind, payload)
    except (EOFError, VerificationError):
        pass
    finally:
        keep.exited = True
        keep.settled.set()


def _endpoints(payload: bytes) -> list[Any]:
    with contextlib.suppress(ValueError, TypeError, KeyError):
        endpoints = json.loads(payload)["endpoints"]
        if isinstance(endpoints, list):
            return endpoints[:64]
    return []


def _log(keep: Keep, kind: int, payload: bytes) -> None:
    """Append one record; a full log keeps only the last word (exit/error frames, failure reports)."""
    final = kind == seal.R_FAIL or (payload[:1] and payload[0] in (seal.EXIT, seal.ERROR))
    if len(keep.log) + len(payload) > MAX_LOG_BYTES and not final:
        keep.dropped += 1
        return
    keep.log += seal.record(kind, payload)


async def _relay(agent: Agent, keep_id: str, keep: Keep) -> AsyncIterator[bytes]:
    """Pass the keep's records through until it exits; the keep dies when the deployer goes away."""
    try:
        while True:
            try:
                kind, payload = await keep.process.receive()
            except EOFError:
                return
            if kind in (seal.R_FRAME, seal.R_FAIL):
                yield seal.record(kind, payload)
    finally:
        agent.destroy(keep_id)


async def stdin(request: Request) -> Response:
    """Sealed stdin frames (records of kind INPUT) from the deployer, relayed to the keep as they arrive.

    The body may be one long chunked upload: each complete record goes on at once, and memory stays
    bounded by one record, because the next chunk is read only after the keep's pipe took the last one
    (the keep in turn reads only as fast as its workload consumes stdin).
    """
    agent: Agent = request.app.state.agent
    keep = agent.keep_for(request)
    if keep is None or not keep.provisioned:
        return _problem(404, NO_SUCH_KEEP)
    reader = seal.RecordReader(seal.MAX_FRAME_BYTES)
    async for chunk in request.stream():
        try:
            records = reader.feed(chunk)
        except VerificationError:
            return _problem(413, "a stdin record is over the frame size limit")
        if any(kind != seal.R_INPUT for kind, _ in records):
            return _problem(400, "body is not a sequence of stdin records")
        try:
            for kind, frame in records:
                await keep.process.send(kind, frame)
        except ConnectionError:
            return _problem(410, "the keep has exited; it takes no more input")
    if reader.pending:
        return _problem(400, "body ends inside a stdin record")
    return Response(status_code=204)


async def keep_status(request: Request) -> Response:
    """A keep's state for its capability holder (never the frames: those are ``/logs``)."""
    agent: Agent = request.app.state.agent
    keep = agent.keep_for(request)
    if keep is None:
        return _problem(404, NO_SUCH_KEEP)
    return JSONResponse({
        "keep_id": request.path_params["keep_id"], "detached": keep.detached,
        "state": "exited" if keep.exited or keep.process.proc.returncode is not None else "running",
        "endpoints": keep.endpoints or [], "log_bytes": len(keep.log), "dropped_frames": keep.dropped,
        "age_s": round(time.monotonic() - keep.created, 3)})


async def keep_logs(request: Request) -> Response:
    """A detached keep's sealed frames so far (records; readable only with the deployer's session key)."""
    agent: Agent = request.app.state.agent
    keep = agent.keep_for(request)
    if keep is None or not keep.detached:
        return _problem(404, NO_SUCH_KEEP)
    return Response(bytes(keep.log), media_type="application/octet-stream",
                    headers={"X-Dropped-Frames": str(keep.dropped)})


async def confirm_keep(request: Request) -> Response:
    """The deployer saved a detached keep's state: the keep runs on past the provision deadline."""
    agent: Agent = request.app.state.agent
    keep = agent.keep_for(request)
    if keep is None or keep.answered is None:
        return _problem(404, NO_SUCH_KEEP)
    keep.confirmed = True
    return Response(status_code=204)


async def delete_keep(request: Request) -> Response:
    """Kill the keep and answer once its process has exited: its ports are free when the deployer hears so
    (``keep restart`` binds them next)."""
    agent: Agent = request.app.state.agent
    keep = agent.keep_for(request)
    if keep is None or not agent.destroy(request.path_params["keep_id"]):
        return _problem(404, NO_SUCH_KEEP)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(keep.process.proc.wait(), STOP_WAIT_S)
    return Response(status_code=204)


def create_app(settings: HostSettings) -> Starlette:
    """The ASGI app (wrap it in :class:`Authenticated` to serve it)."""
    agent = Agent(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await agent.startup()
        yield
        await agent.shutdown()

    routes = [
        Route("/v1/platform", platform, methods=["GET"]),
        Route("/v1/keeps", create_keep, methods=["POST"]),
        Route("/v1/keeps/{keep_id:str}/provision", provision, methods=["POST"]),
        Route("/v1/keeps/{keep_id:str}/stdin", stdin, methods=["POST"]),
        Route("/v1/keeps/{keep_id:str}/logs", keep_logs, methods=["GET"]),
        Route("/v1/keeps/{keep_id:str}/confirm", confirm_keep, methods=["POST"]),
        Route("/v1/keeps/{keep_id:str}", keep_status, methods=["GET"]),
        Route("/v1/keeps/{keep_id:str}", delete_keep, methods=["DELETE"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.agent = agent
    return app


class Authenticated:
    """ASGI wrapper: the shared bearer token for the platform report and create-keep (plain ASGI, so
    streaming is untouched). Routes of one keep check that keep's own capability instead."""

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.agent: Agent = app.state.agent

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        shared = scope["type"] == "http" and not str(scope.get("path", "")).startswith(KEEP_ROUTES)
        if shared and not self.agent.authorised(Request(scope)):
            response = JSONResponse({"error": "missing or wrong bearer token"}, status_code=401,
                                    headers={"WWW-Authenticate": "Bearer"})
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
