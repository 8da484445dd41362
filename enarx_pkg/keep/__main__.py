"""``python -m enarx_pkg.keep``: the per-keep process the host agent starts (and pre-starts)."""

import sys

from enarx_pkg.keep.process import main

sys.exit(main(sys.argv[1:]))
