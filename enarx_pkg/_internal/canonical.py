"""Canonical JSON: sorted keys, no insignificant white space, UTF-8. Same input, same bytes."""

from __future__ import annotations

import json
from typing import Any


def dumps(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
