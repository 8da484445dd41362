"""Run a network workload under chosen limits, for tests: ``python -m tests.network.serve SPEC_JSON``.

The JSON gives ``module``, ``files`` (File fields), and optionally ``limits`` (Limits fields) and
``time_limit_s``. It runs in its own process so a test can kill it, count its descriptors, and
never leave a server behind in the test process.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(raw: str) -> int:
    from enarx_pkg import runtime
    from enarx_pkg.errors import Error
    from enarx_pkg.manifest.model import File
    from enarx_pkg.network import Limits

    spec = json.loads(raw)
    files = tuple(File(**f) for f in spec["files"])
    run = runtime.RunSpec(Path(spec["module"]), files=files, env=spec.get("env", {}), stdin=b"",
                          time_limit_s=spec.get("time_limit_s", 120.0), network=Limits(**spec.get("limits", {})))
    try:
        return runtime.run(run)
    except Error as exc:
        print(exc.diagnostics(), file=sys.stderr)
        return int(exc.exit_code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
