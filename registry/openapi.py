"""The JSON API's OpenAPI 3.1 document, built here and committed as ``schemas/registry-api.openapi.json``.

Regenerate the committed copy with ``python -m registry.openapi > schemas/registry-api.openapi.json``;
a test checks that the served document equals the file.
"""

from __future__ import annotations

import json
import sys
from typing import Any

_STR = {"type": "string"}
_NSTR = {"type": ["string", "null"]}


def _obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": required or list(props)}


def _schemas() -> dict[str, Any]:
    summary = _obj({"name": _STR, "description": _NSTR, "license": _NSTR, "versions": {"type": "integer"},
                    "updated": _STR, "latest": _NSTR})
    tag = _obj({"tag": _STR, "digest": _STR, "pushed_by": _NSTR, "pushed_at": _STR, "yanked": {"type": "boolean"}})
    repo = {"allOf": [{"$ref": "#/components/schemas/RepositorySummary"},
                      _obj({"allow_overwrite": {"type": "boolean"},
                            "tags": {"type": "array", "items": {"$ref": "#/components/schemas/Tag"}},
                            "page": {"type": "integer"}, "pages": {"type": "integer"}})]}
    signature = _obj({"digest": _STR, "kind": {"enum": ["keyless", "key", "unknown"]}, "signer": _STR,
                      "issuer": _NSTR, "verified": {"type": "boolean"}, "note": _STR,
                      "subject_matches": {"type": ["boolean", "null"]}, "provenance": {"type": "object"}})
    layer = _obj({"index": {"type": "integer"}, "media_type": _STR, "digest": _NSTR,
                  "size": {"type": ["integer", "null"]}, "title": _NSTR, "encrypted": {"type": "boolean"}})
    version = _obj({"repository": _STR, "reference": _STR, "digest": _STR, "media_type": _STR,
                    "size": {"type": "integer"}, "tags": {"type": "array", "items": _STR},
                    "yanked": {"type": "boolean"}, "pushed_by": _NSTR, "pushed_at": _STR,
                    "created": {"type": "string", "description": "when the package was built; 'unknown' if it "
                                "does not say (or says 1970-01-01)"},
                    "annotations": {"type": "object", "additionalProperties": _STR},
                    "layers": {"type": "array", "items": {"$ref": "#/components/schemas/Layer"}},
                    "encrypted": {"type": "boolean"}, "enarx_toml": _NSTR,
                    "signatures": {"type": "array", "items": {"$ref": "#/components/schemas/Signature"}}})
    error = _obj({"error": _STR})
    return {"RepositorySummary": summary, "Tag": tag, "Repository": repo, "Signature": signature,
            "Layer": layer, "Version": version, "Error": error}


def _ok(schema: dict[str, Any], missing: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "200": {"description": "OK", "content": {"application/json": {"schema": schema}}},
        "401": {"description": "credentials given but not valid", "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/Error"}}}},
    }
    if missing:
        out["404"] = {"description": "not found, or not visible to the caller", "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    return out


def _bad(responses: dict[str, Any]) -> dict[str, Any]:
    responses["400"] = {"description": "a query parameter is not what this document says", "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    return responses


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _param(name: str, where: str = "path", schema: dict[str, Any] | None = None, desc: str = "") -> dict[str, Any]:
    return {"name": name, "in": where, "required": where == "path", "schema": schema or _STR, "description": desc}


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document served at /api/v1/openapi.json."""
    name = _param("name", desc="repository name (may contain '/')")
    ref = _param("reference", desc="a tag or a sha256 digest")
    yanked = _param("include_yanked", "query", {"type": "boolean"}, "include yanked versions")
    page = _param("page", "query", {"type": "integer", "minimum": 1, "maximum": 1000000},
                  "page of versions, newest first, 100 a page")
    base = "/api/v1"
    paths = {
        f"{base}/search": {"get": {"operationId": "search", "summary": "Search repositories by name and description",
                                   "parameters": [_param("q", "query", desc="search text")],
                                   "responses": _ok(_obj({"results": {"type": "array",
                                                                      "items": _ref("RepositorySummary")}}), False)}},
        f"{base}/repositories": {"get": {"operationId": "listRepositories", "summary": "Repositories you may pull",
                                         "responses": _ok(_obj({"repositories": {
                                             "type": "array", "items": _ref("RepositorySummary")}}), False)}},
        base + "/repositories/{name}": {"get": {"operationId": "getRepository", "parameters": [name, yanked, page],
                                                "summary": "A repository and one page of its versions",
                                                "responses": _bad(_ok(_ref("Repository")))}},
        base + "/repositories/{name}/-/versions": {"get": {
            "operationId": "listVersions", "summary": "Versions (tags) of a repository, one page",
            "parameters": [name, yanked, page],
            "responses": _bad(_ok(_obj({"name": _STR, "versions": {"type": "array", "items": _ref("Tag")},
                                        "page": {"type": "integer"}, "pages": {"type": "integer"}})))}},
        base + "/repositories/{name}/-/versions/{reference}": {"get": {
            "operationId": "getVersion", "summary": "A version: layers, Enarx.toml, signatures, yanked flag",
            "parameters": [name, ref], "responses": _ok(_ref("Version"))}},
        base + "/repositories/{name}/-/versions/{reference}/signatures": {"get": {
            "operationId": "getSignatures", "summary": "Signatures of a version and whether they verified",
            "parameters": [name, ref],
            "responses": _ok(_obj({"digest": _STR, "signatures": {"type": "array", "items": _ref("Signature")}}))}},
    }
    return {"openapi": "3.1.0",
            "info": {"title": "enarx-pkg registry API", "version": "1",
                     "description": "Read-only browsing API of the enarx-pkg registry. The OCI distribution API "
                                    "is served under /v2/ as the OCI distribution specification v1.1 defines it."},
            "paths": paths, "components": {"schemas": _schemas(), "securitySchemes": {
                "token": {"type": "http", "scheme": "bearer"}}}}


if __name__ == "__main__":
    sys.stdout.write(json.dumps(document(), indent=2, sort_keys=True) + "\n")
