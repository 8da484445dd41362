"""Host- and peer-supplied text made safe to print: no terminal escapes, no control characters."""

from __future__ import annotations

import unicodedata

# control, format (bidi overrides, zero-width), surrogates, private use, line/paragraph separators
_UNSAFE = frozenset(("Cc", "Cf", "Cs", "Co", "Zl", "Zp"))


def printable(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with every character a terminal could act on written as an escape (``\\x1b``, ``\\u202e``).

    ESC sequences (colours, cursor moves, OSC 8 links, title changes), carriage returns that
    overwrite a line, and bidi overrides reach the reader as visible escapes instead of effects.
    """
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch == "\n" and keep_newlines:
            out.append(ch)
        elif unicodedata.category(ch) in _UNSAFE:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        else:
            out.append(ch)
    return "".join(out)
