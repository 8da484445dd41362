"""Just enough of the WebAssembly binary format to tell a module from a component and list imports.

Reading the import section ourselves lets ``build`` check a core module's imports without asking
wasmtime to compile it (compiling a 50 MB module takes minutes; this takes microseconds). The file is
read by sections with seeks, never loaded whole. Components are inspected through wasmtime instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from enarx_pkg.errors import BuildError

MAGIC = b"\0asm"
MODULE_VERSION = b"\x01\x00\x00\x00"
COMPONENT_VERSION = b"\x0d\x00\x01\x00"
IMPORT_SECTION = 2
MEMORY_SECTION = 5
PAGE = 65536
MAX_IMPORTS = 100_000

Kind = Literal["module", "component"]


@dataclass(frozen=True)
class Import:
    module: str
    name: str

    def __str__(self) -> str:
        return f"{self.module}::{self.name}"


def kind_of(path: Path) -> Kind:
    """``module`` or ``component`` from the 8-byte preamble, or :class:`BuildError` if not wasm."""
    with open(path, "rb") as f:
        head = f.read(8)
    if len(head) < 8 or head[:4] != MAGIC:
        raise BuildError(f"{path} is not a WebAssembly binary (no '\\0asm' magic number)")
    if head[4:] == MODULE_VERSION:
        return "module"
    if head[4:] == COMPONENT_VERSION:
        return "component"
    raise BuildError(f"{path}: unsupported WebAssembly binary version {head[4:].hex()}")


@dataclass(frozen=True)
class CoreInfo:
    imports: list[Import]
    initial_memory: int  # bytes of memory 0 at instantiation (its minimum), 0 without one


def core_imports(path: Path) -> list[Import]:
    """The imports of a core module, in order. Raises :class:`BuildError` on a malformed binary."""
    return core_info(path).imports


def core_info(path: Path) -> CoreInfo:
    """Imports and initial memory of a core module, reading only the import and memory sections."""
    imports: list[Import] = []
    memories: list[int] = []
    with open(path, "rb") as f:
        f.seek(8)
        size = path.stat().st_size
        while f.tell() < size:
            section_id = _byte(f, path)
            length = _uleb(f, path)
            start = f.tell()
            if start + length > size:
                raise BuildError(f"{path}: truncated module (section {section_id} runs past the end)")
            if section_id == IMPORT_SECTION:
                imports = _imports(f, path, memories)
            elif section_id == MEMORY_SECTION:
                memories += [_limits(f, path) for _ in range(_uleb(f, path))][:1]
            elif section_id > MEMORY_SECTION:
                break  # sections come in order: nothing after the memory section is needed
            f.seek(start + length)
    return CoreInfo(imports, memories[0] if memories else 0)


def _imports(f: BinaryIO, path: Path, memories: list[int]) -> list[Import]:
    count = _uleb(f, path)
    if count > MAX_IMPORTS:
        raise BuildError(f"{path}: {count} imports is over the limit of {MAX_IMPORTS}")
    out = []
    for _ in range(count):
        module, name = _name(f, path), _name(f, path)
        memory = _skip_importdesc(f, path)
        if memory is not None:
            memories.append(memory)
        out.append(Import(module, name))
    return out


def _skip_importdesc(f: BinaryIO, path: Path) -> int | None:
    """Skip one import's description; an imported memory's initial size in bytes is returned."""
    kind = _byte(f, path)
    if kind == 0x00:  # func: type index
        _uleb(f, path)
    elif kind == 0x01:  # table: reftype + limits
        _byte(f, path)
        _limits(f, path)
    elif kind == 0x02:  # memory: limits
        return _limits(f, path)
    elif kind == 0x03:  # global: valtype + mutability
        _valtype(f, path)
        _byte(f, path)
    elif kind == 0x04:  # tag: attribute + type index
        _byte(f, path)
        _uleb(f, path)
    else:
        raise BuildError(f"{path}: unknown import kind 0x{kind:02x}")
    return None


def _valtype(f: BinaryIO, path: Path) -> None:
    code = _byte(f, path)
    if code in (0x63, 0x64):  # (ref null? heaptype): heap type is a signed LEB
        _uleb(f, path)


def _limits(f: BinaryIO, path: Path) -> int:
    """Skip limits; their minimum in bytes (for a memory: pages of 64 KiB or the custom size)."""
    flags = _byte(f, path)
    minimum = _uleb(f, path)
    if flags & 0x01:
        _uleb(f, path)
    page = PAGE
    if flags & 0x08:  # custom page size (log2)
        page = 1 << min(_uleb(f, path), 16)
    return minimum * page


def _name(f: BinaryIO, path: Path) -> str:
    length = _uleb(f, path)
    if length > 1 << 16:
        raise BuildError(f"{path}: import name of {length} bytes is too long")
    raw = f.read(length)
    if len(raw) != length:
        raise BuildError(f"{path}: truncated module (import name)")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BuildError(f"{path}: import name is not UTF-8") from None


def _byte(f: BinaryIO, path: Path) -> int:
    b = f.read(1)
    if not b:
        raise BuildError(f"{path}: truncated module")
    return b[0]


def _uleb(f: BinaryIO, path: Path) -> int:
    result = shift = 0
    while True:
        b = _byte(f, path)
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result
        shift += 7
        if shift > 63:
            raise BuildError(f"{path}: malformed LEB128 integer")
