"""``python -m enarx_pkg.keep``: the per-keep process the host agent starts (and pre-starts)."""

import sys

from enarx_pkg.keep.launch import refuse_unless_launched_as_a_keep

refuse_unless_launched_as_a_keep()  # before the keep loads any more of its own code (keep/launch.py)

from enarx_pkg.keep.process import main  # noqa: E402

sys.exit(main(sys.argv[1:]))
