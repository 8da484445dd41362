import sys

from enarx_pkg._cli.main import main

sys.exit(main())
