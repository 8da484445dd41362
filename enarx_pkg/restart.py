"""``keep restart``: a detached keep is replaced by a NEW keep, attested again, running the same package.

Keeps restart only when their deployer asks. A restart is a deploy (``deploy.deploy`` with
``--detach``), so it takes every step a deploy takes, in the same order: the package, pinned by the
digest the first deploy resolved, is pulled and its signature verified again (same signer); a new
keep is created with a fresh nonce and its evidence appraised against the policy as it reads NOW;
only the keep ``trust.attest`` accepted gets the sealed envelope (secrets read again from their
sources, a fresh session key). Anything that fails up to there leaves the old keep untouched.

Then the order depends on the ports:

* the new keep's host ports are free (no explicit mapping, or one naming other ports): the new keep
  binds, its state is saved and confirmed, and only then is the old keep stopped. No downtime; the
  endpoints may change (printed, and saved in the state).
* the mapping names a port the old keep holds (``deploy --publish``, kept by restart): the old keep is
  stopped first, right before the new one is provisioned, so the service is down from that moment
  until the new keep has bound its sockets (typically well under a second on a sim host; a pull of
  the package by the keep is inside that window). If the new keep then fails to start, the old one
  is gone and its state file is kept, so ``keep restart`` can be run again.

The state file is replaced only once the new keep runs and is confirmed: ``--state FILE`` is
replaced atomically (``os.replace``); in the state dir the old keep's file is removed and the new
keep's written. An old keep that is already gone (exited, reaped, agent restarted) is no obstacle.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from enarx_pkg import keeps
from enarx_pkg.deploy import DeploySettings, Event, HostResult, deploy
from enarx_pkg.deploy_plan import parse_secret_option
from enarx_pkg.errors import Error, InputError, TransportError, UsageError
from enarx_pkg.host.client import HostClient, Limits
from enarx_pkg.network import parse_mapping


@dataclass(frozen=True)
class RestartOptions:
    """What the deployer says again at restart (the rest comes from the keep's recipe)."""

    policy: Path | None = None  # default: the policy file the keep was deployed with, read again
    host_token_file: Path | None = None  # default: the recorded token file, read again
    insecure_sim: bool = False  # never recorded: a sim keep needs --insecure-sim at every restart
    allow_yanked: bool = False
    allow_version_mismatch: bool = False
    publish: tuple[str, ...] | None = None  # HOSTPORT:LISTEN items; None: the recorded mapping
    limits: Limits = field(default_factory=Limits)


class Replacing:
    """The old keep, retired by the deploy of its successor at the moment the port plan says."""

    def __init__(self, record: keeps.KeepRecord, state: Path | None, stop_first: bool, limits: Limits) -> None:
        self.record, self.state, self.stop_first, self.limits = record, state, stop_first, limits
        self.stopped = False

    def before_bind(self, event: Event) -> None:
        if self.stop_first:
            self._stop(event, "first: it holds a port the new keep binds (no service until the new keep listens)")

    def after_saved(self, new_state: Path, event: Event) -> Path:
        """Stop the old keep (if still running) and replace its state by the new keep's; the state's path."""
        if not self.stopped:
            try:
                self._stop(event, "now that the new keep runs")
            except Error as exc:
                raise TransportError(f"the new keep runs (state: {new_state}), but the old keep "
                                     f"{self.record.keep_id} could not be stopped: {exc.message}",
                                     hint="stop the old one with `enarx-pkg keep stop` and its state file") from None
        if self.state is not None:
            os.replace(new_state, self.state)  # --state FILE: the same file now names the new keep
            return self.state
        (keeps.state_dir() / f"{self.record.keep_id}.json").unlink(missing_ok=True)
        return new_state

    def _stop(self, event: Event, why: str) -> None:
        event(self.record.host, f"stopping the old keep {self.record.keep_id} {why}")
        try:
            with HostClient(self.record.host, None, self.limits) as client:
                client.stop(self.record.keep_id, self.record.capability)
        except TransportError as exc:
            if exc.status != 404:
                raise
            event(self.record.host, f"the old keep {self.record.keep_id} was already gone")
        self.stopped = True


def restart(record: keeps.KeepRecord, state: Path | None, opts: RestartOptions,
            event: Event | None = None) -> HostResult:
    """Deploy the keep's package again to a new, freshly attested keep; then retire the old one."""
    recipe = record.recipe
    if recipe is None or not recipe.reference:
        raise InputError(f"keep {record.keep_id}: its state file has no deploy recipe (written before "
                         "`keep restart` existed)", hint="deploy it again with `deploy --detach`, then stop it")
    mapping = parse_mapping(recipe.publish if opts.publish is None else opts.publish)
    held = {_port(e) for e in record.endpoints}
    replacing = Replacing(record, state, any(port in held for _, port in mapping), opts.limits)
    settings = settings_for(record, opts, mapping, replacing)
    [result] = deploy(settings, event=event).hosts
    if result.error is not None:
        raise result.error
    return result


def settings_for(record: keeps.KeepRecord, opts: RestartOptions, mapping: tuple[tuple[str, int], ...],
                 replacing: Replacing) -> DeploySettings:
    """The deploy settings of the recipe, every referenced file read again now."""
    recipe = record.recipe
    assert recipe is not None
    token_file = opts.host_token_file or (Path(recipe.host_token_file) if recipe.host_token_file else None)
    return DeploySettings(
        ref=recipe.reference, hosts=(record.host,), signer=_signer(recipe),
        policy_path=opts.policy or Path(recipe.policy),
        host_token=_read(token_file, "host token file").decode().strip() if token_file else None,
        decryption_key=_read(Path(recipe.decryption_key), "decryption key") if recipe.decryption_key else None,
        secrets=tuple(parse_secret_option(s) for s in recipe.secrets), insecure_sim=opts.insecure_sim,
        args=recipe.args, keep_registry=recipe.keep_registry or None, allow_yanked=opts.allow_yanked,
        allow_version_mismatch=opts.allow_version_mismatch, limits=opts.limits, detach=True,
        state=None if replacing.state is None else replacing.state.with_name(replacing.state.name + ".new"),
        publish=mapping, recipe=_recipe_with(recipe, opts, mapping), replaces=replacing, tls=_tls(recipe))


def _tls(recipe: keeps.Recipe) -> Any:
    """The deploy's ``--tls-*`` again: the CA read (and its key's mode checked) now, as at deploy."""
    if not (recipe.tls_ca or recipe.tls_names or recipe.tls12):
        return None
    from datetime import timedelta

    from enarx_pkg.tls import deployer, issue

    seconds = int(recipe.tls_lifetime_s) if recipe.tls_lifetime_s.isdigit() else None
    lifetime = issue.DEFAULT_LIFETIME if seconds is None else timedelta(seconds=seconds)
    return deployer.load(Path(recipe.tls_ca) if recipe.tls_ca else None,
                         Path(recipe.tls_ca_key) if recipe.tls_ca_key else None, recipe.tls_names, lifetime, True,
                         tls12=recipe.tls12 == "1")


def _recipe_with(recipe: keeps.Recipe, opts: RestartOptions, mapping: tuple[tuple[str, int], ...]) -> keeps.Recipe:
    """The recipe the new keep is saved with: what this restart used."""
    from dataclasses import replace

    return replace(recipe, policy=str((opts.policy or Path(recipe.policy)).resolve()),
                   host_token_file=str(opts.host_token_file.resolve()) if opts.host_token_file
                   else recipe.host_token_file, publish=tuple(f"{port}:{key}" for key, port in mapping))


def _signer(recipe: keeps.Recipe) -> Any:
    from enarx_pkg import verify

    if recipe.signer_key:
        return verify.KeyPolicy(recipe.signer_key.encode())
    if recipe.identity or recipe.issuer:
        return verify.IdentityPolicy(identity=recipe.identity or None, issuer=recipe.issuer or None,
                                     trust_config=recipe.trust_config or None)
    raise UsageError("the keep's recipe names no signer to verify the package with")


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"{what} {path}: {exc.strerror}", hint="restart reads it again where deploy read it") from None


def _port(endpoint: Any) -> int:
    with contextlib.suppress(ValueError, TypeError, KeyError, AttributeError):
        return int(str(endpoint["address"]).rsplit(":", 1)[1])
    return -1
