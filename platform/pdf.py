"""PDF documents with fpdf2 in Keerpunt's house style: DejaVu Sans, A4, a footer with page
numbers, and a fixed creation date so the same content gives the same bytes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from fpdf import FPDF

__all__ = ["FONT", "FONT_DIR", "FontMissing", "KeerpuntPDF", "font_path"]

# DejaVu Sans from the Debian package fonts-dejavu-core (installed with the system, updated by
# it; no font files in this repository): it covers every Dutch letter (ë, ï, é, ĳ) and the €
# sign, and fpdf2 embeds only the subset a document uses.
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONT = "DejaVu"
_PAGES = "{total_pages}"


class FontMissing(RuntimeError):
    pass


def font_path(name: str) -> Path:
    path = FONT_DIR / name
    if not path.is_file():
        raise FontMissing(f"{path} is missing: install the Debian package fonts-dejavu-core")
    return path


class KeerpuntPDF(FPDF):
    """An A4 document with DejaVu Sans (regular ``""`` and bold ``"B"``) and a footer line.

    ``created`` becomes the document's creation date (and seeds its file id); give the moment
    the content was fixed, not the moment of writing, so writing again gives identical bytes.
    """

    def __init__(
        self, footer_text: str, *, created: dt.datetime | None = None, orientation: str = "P"
    ) -> None:
        super().__init__(orientation=orientation, format="A4")
        self._footer_text = footer_text
        self.add_font(FONT, "", str(font_path("DejaVuSans.ttf")))
        self.add_font(FONT, "B", str(font_path("DejaVuSans-Bold.ttf")))
        self.set_auto_page_break(auto=True, margin=18)
        self.set_margins(18, 18, 18)
        # A wide alias: statements run to thousands of pages, "{nb}" has room for fewer.
        self.alias_nb_pages(_PAGES)
        if created is not None:
            self.set_creation_date(created.astimezone(dt.UTC))

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(FONT, "", 8)
        self.cell(0, 6, f"{self._footer_text} · {self.page_no()}/{_PAGES}", align="C")

    def title_line(self, text: str) -> None:
        self.set_font(FONT, "B", 17)
        self.multi_cell(0, 9, text, new_x="LMARGIN", new_y="NEXT")
        self.set_font(FONT, "", 10)

    def heading(self, text: str) -> None:
        self.ln(3)
        self.set_font(FONT, "B", 13)
        self.multi_cell(0, 7, text, new_x="LMARGIN", new_y="NEXT")
        self.set_font(FONT, "", 10)

    def para(self, text: str, bold: bool = False) -> None:
        self.set_font(FONT, "B" if bold else "", 10)
        self.multi_cell(0, 5.5, text, new_x="LMARGIN", new_y="NEXT")
        self.set_font(FONT, "", 10)

    def bullet(self, text: str) -> None:
        self.multi_cell(0, 5.5, "• " + text, new_x="LMARGIN", new_y="NEXT")

    def to_bytes(self) -> bytes:
        return bytes(self.output())
