"""A text file's bytes as lines, remembering encoding, BOM, line ending and final newline."""

from __future__ import annotations

import codecs
from dataclasses import dataclass

_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF32_LE, "utf-32-le"),
         (codecs.BOM_UTF32_BE, "utf-32-be"), (codecs.BOM_UTF16_LE, "utf-16-le"),
         (codecs.BOM_UTF16_BE, "utf-16-be"))


class NotTextError(ValueError):
    """The bytes are not a text file we can edit faithfully."""


@dataclass
class TextFile:
    """Lines without their endings, and what it takes to write them back byte-faithfully."""

    lines: list[str]
    encoding: str = "utf-8"
    bom: bytes = b""
    newline: str = "\n"
    final_newline: bool = True

    @classmethod
    def decode(cls, data: bytes) -> TextFile:
        """Read bytes; NotTextError for binary data."""
        bom = b""
        encoding = "utf-8"
        for mark, name in _BOMS:
            if data.startswith(mark):
                bom, encoding = mark, name
                break
        body = data[len(bom):]
        if not bom and b"\0" in body[:8192]:
            raise NotTextError("binary file")
        try:
            text = body.decode(encoding)
        except UnicodeDecodeError:
            # latin-1 round-trips every byte, so a legacy-encoded file is written back unchanged
            encoding = "latin-1"
            text = body.decode(encoding)
        crlf = text.count("\r\n")
        lf = text.count("\n")
        newline = "\r\n" if crlf and crlf == lf else "\n"
        if newline == "\r\n":
            text = text.replace("\r\n", "\n")
        final = text.endswith("\n") or not text
        lines = text.split("\n")
        if text.endswith("\n"):
            lines.pop()
        if not text:
            lines = []
        return cls(lines, encoding, bom, newline, final)

    def encode(self, lines: list[str] | None = None) -> bytes:
        """These (or other) lines in this file's encoding, endings and final-newline habit."""
        body = self.newline.join(self.lines if lines is None else lines)
        if (self.lines if lines is None else lines) and self.final_newline:
            body += self.newline
        return self.bom + body.encode(self.encoding)

    @classmethod
    def new(cls, text: str, like: TextFile | None = None) -> TextFile:
        """A fresh file from model text (LF, UTF-8 unless `like` says otherwise)."""
        lines = text_lines(text)
        base = like or cls([])
        return cls(lines, base.encoding, base.bom, base.newline, True)


def text_lines(text: str) -> list[str]:
    """Model text ("a\\nb\\n") as lines (["a", "b"])."""
    if not text:
        return []
    lines = text.replace("\r\n", "\n").split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines
