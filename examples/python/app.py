"""Hello in Python, as a WASI 0.2 command component (componentize-py): greeting, args, FD_NAMES."""

import os
import sys

from wit_world import exports


class Run(exports.Run):
    def run(self) -> None:
        print("Hello from Python in an Enarx keep!")
        for arg in sys.argv[1:]:
            print(f"arg: {arg}")
        print(f"FD_NAMES={os.environ.get('FD_NAMES', '(unset)')}")
