"""PDFs written in the tests: text pages and scanned (image-only) pages, built with pypdf."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def write_pdf(path: Path, pages: Sequence[str | None], *, password: str | None = None) -> Path:
    """One page per item: a string is that page's text (one line per line); None is a scan
    (a gray image drawn over the page, no text layer)."""
    from pypdf import PdfWriter
    from pypdf.generic import (
        ArrayObject,
        DecodedStreamObject,
        DictionaryObject,
        FloatObject,
        NameObject,
        NumberObject,
    )

    writer = PdfWriter()
    font = DictionaryObject({
        NameObject("/Type"): NameObject("/Font"),
        NameObject("/Subtype"): NameObject("/Type1"),
        NameObject("/BaseFont"): NameObject("/Helvetica"),
    })
    font_ref = writer._add_object(font)
    for text in pages:
        page = writer.add_blank_page(width=612, height=792)
        resources = DictionaryObject()
        content = DecodedStreamObject()
        if text is None:
            image = DecodedStreamObject()
            side = 32
            image.set_data(bytes((x * 7 + y * 3) % 256 for y in range(side) for x in range(side)))
            image.update({
                NameObject("/Type"): NameObject("/XObject"),
                NameObject("/Subtype"): NameObject("/Image"),
                NameObject("/Width"): NumberObject(side),
                NameObject("/Height"): NumberObject(side),
                NameObject("/ColorSpace"): NameObject("/DeviceGray"),
                NameObject("/BitsPerComponent"): NumberObject(8),
            })
            resources[NameObject("/XObject")] = DictionaryObject(
                {NameObject("/Im0"): writer._add_object(image)})
            content.set_data(b"q 512 0 0 692 50 50 cm /Im0 Do Q")
        else:
            resources[NameObject("/Font")] = DictionaryObject({NameObject("/F1"): font_ref})
            lines = [f"({_escape(line)}) Tj T*" for line in text.splitlines()]
            content.set_data(("BT /F1 12 Tf 14 TL 72 720 Td " + " ".join(lines) + " ET").encode("latin-1"))
        page[NameObject("/Resources")] = resources
        page[NameObject("/Contents")] = writer._add_object(content)
        page[NameObject("/MediaBox")] = ArrayObject(
            [FloatObject(0), FloatObject(0), FloatObject(612), FloatObject(792)])
    if password is not None:
        writer.encrypt(user_password=password, owner_password=password, algorithm="RC4-128")
    with path.open("wb") as handle:
        writer.write(handle)
    return path
