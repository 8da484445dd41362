"""The model written back out: normalised TOML (the package's config layer) and JSON-able dicts.

The output is a function of the model alone, with every default made explicit and maps sorted, so
equal models give byte-identical TOML whichever dialect or key order they were written in.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from enarx_pkg.manifest.model import EnarxToml, File, Keep, default_connect_name


def normalised(model: EnarxToml) -> dict[str, Any]:
    """The model as plain TOML-shaped data, in a fixed order."""
    doc: dict[str, Any] = {}
    if model.args:
        doc["args"] = list(model.args)
    if model.steward:
        doc["steward"] = model.steward
    if model.package:
        p = model.package
        doc["package"] = _drop_empty({"name": p.name, "version": p.version, "description": p.description,
                                      "license": p.license, "authors": list(p.authors), "source": p.source})
    if model.env:
        doc["env"] = dict(sorted(model.env.items()))
    doc["files"] = [_file(f) for f in model.files]
    if model.build:
        b = model.build
        doc["build"] = _drop_empty({
            "command": (b.command[0] if b.shell else list(b.command)) if b.command else None,
            "shell": b.shell or None, "debug": b.debug or None, "recipe": b.recipe, "sources": list(b.sources),
            "workdir": b.workdir,
            "output": b.output, "env": dict(sorted(b.env.items())),
        })
        if b.deterministic is not None:  # false is a choice too (a componentize-py build left unfrozen)
            doc["build"]["deterministic"] = b.deterministic
    doc["keep"] = _keep(model.keep)
    if model.attestation:
        doc["attestation"] = _plain(model.attestation)
    for name, section in (("signing", model.signing), ("publish", model.publish)):
        data = _drop_empty(dict(vars(section)))
        if data:
            doc[name] = {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}
    if model.secrets:
        doc["secrets"] = {s.name: _drop_empty({s.source: s.ref, "mount": s.mount})
                          for s in sorted(model.secrets, key=lambda s: s.name)}
    return doc


def _file(f: File) -> dict[str, Any]:
    data: dict[str, Any] = {"kind": f.kind}
    if not (f.kind == "connect" and f.host is not None and f.name == default_connect_name(f.host)):
        data["name"] = f.name  # a default connect name stays implicit, so two connects to one host round-trip
    for key in ("addr", "host", "port", "prot", "ca"):
        if getattr(f, key) is not None:
            data[key] = getattr(f, key)
    return data


def _keep(k: Keep) -> dict[str, Any]:
    data: dict[str, Any] = {"backends": list(k.backends), "memory_mb": k.memory_mb}
    if k.time_limit_s is not None:
        data["time_limit_s"] = float(k.time_limit_s)
    if k.fuel is not None:
        data["fuel"] = k.fuel
    if k.dirs:
        data["dirs"] = [{"host": d.host, "guest": d.guest, "writable": d.writable} for d in k.dirs]
    return data


def _drop_empty(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v not in (None, "", [], (), {}, False)}


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(value[k]) for k in sorted(value)}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def to_toml(model: EnarxToml) -> str:
    """Deterministic normalised TOML (native ``[[files]]`` dialect, every default explicit)."""
    import tomlkit  # writes [[files]] as an array of tables, as people write it

    return tomlkit.dumps(normalised(model))


def to_dict(model: EnarxToml) -> dict[str, Any]:
    """JSON-able form of the model (datetimes become ISO 8601 strings)."""
    data: dict[str, Any] = _jsonable(normalised(model))
    return data


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    return value
