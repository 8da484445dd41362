"""OCI distribution error codes and their JSON bodies (``{"errors": [{"code", "message", "detail"}]}``)."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response

STATUS = {
    "BLOB_UNKNOWN": 404, "BLOB_UPLOAD_INVALID": 400, "BLOB_UPLOAD_UNKNOWN": 404, "DIGEST_INVALID": 400,
    "MANIFEST_BLOB_UNKNOWN": 400, "MANIFEST_INVALID": 400, "MANIFEST_UNKNOWN": 404, "NAME_INVALID": 400,
    "NAME_UNKNOWN": 404, "SIZE_INVALID": 400, "UNAUTHORIZED": 401, "DENIED": 403, "UNSUPPORTED": 405,
    "TOOMANYREQUESTS": 429, "RANGE_INVALID": 416, "PAGINATION_NUMBER_INVALID": 400, "TAG_INVALID": 400,
    "UNAVAILABLE": 503,
}


# the spec says a JSON error body's code MUST be one of its fourteen: finer reasons raised here travel in
# ``detail`` under the nearest spec code
SPEC_CODE = {"RANGE_INVALID": "BLOB_UPLOAD_INVALID", "TAG_INVALID": "MANIFEST_INVALID",
             "PAGINATION_NUMBER_INVALID": "UNSUPPORTED"}


class OciError(Exception):
    """Raised by a handler; rendered once by the dispatcher as the spec's JSON error body."""

    def __init__(self, code: str, message: str, status: int | None = None, detail: Any = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or STATUS[code]
        self.detail = detail
        self.headers = headers or {}

    def response(self) -> Response:
        code = SPEC_CODE.get(self.code, self.code)
        body: dict[str, Any] = {"code": code, "message": self.message}
        detail = self.detail if self.detail is not None or code == self.code else {"reason": self.code}
        if detail is not None:
            body["detail"] = detail
        return Response(json.dumps({"errors": [body]}), self.status, headers=self.headers,
                        media_type="application/json")
