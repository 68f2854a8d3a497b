"""Lean copies of the DejaVu faces the default template uses, built once per machine: without
OpenType layout or hinting tables, only Latin, Greek, Cyrillic and common symbols, common glyphs
first, with a fontconfig file that prefers them (see ``billing.documents.pdf``)."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

__all__ = ["LEAN_SUFFIX", "find_faces", "lean_dir"]

LEAN_SUFFIX = " Lean"
# family -> (generic family it serves, its faces): the faces the default template uses.
_FAMILIES = {
    "DejaVu Sans": ("sans-serif", ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf",
                                   "DejaVuSans-Oblique.ttf", "DejaVuSans-BoldOblique.ttf")),
    "DejaVu Sans Mono": ("monospace", ("DejaVuSansMono.ttf",)),
}  # fmt: skip
_FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/dejavu",
              "/usr/share/fonts/TTF", "/usr/share/fonts/dejavu-sans-fonts",
              "/usr/share/fonts/dejavu-sans-mono-fonts", "/usr/local/share/fonts")  # fmt: skip
# Latin (all of Latin-1 and Extended-A/B), spacing modifiers, Greek, Cyrillic, punctuation,
# currency and letterlike symbols, arrows, the minus sign, the replacement character.
_LEAN_RANGES = ((0x20, 0x24F), (0x2B0, 0x2FF), (0x370, 0x4FF), (0x2000, 0x206F),
                (0x20A0, 0x20CF), (0x2100, 0x214F), (0x2190, 0x21FF), (0x2212, 0x2212),
                (0xFFFD, 0xFFFD))  # fmt: skip
# Code points most documents use, given the lowest glyph ids (see _common_glyphs_first): ASCII,
# the spaces, dashes, quotes and marks Babel and typographers emit, the euro, Latin-1, then
# the rest of general punctuation and the currency symbols.
_COMMON = (*range(0x20, 0x7F), 0xA0, 0x202F, 0x2009, 0x2013, 0x2014, 0x2019, 0x201C, 0x201D,
           0x2018, 0x200E, 0x200F, 0x2022, 0x2026, 0x20AC, *range(0xA1, 0x100),
           *range(0x2000, 0x2070), *range(0x20A0, 0x20C1), 0x2116, 0x2122, 0x2212)  # fmt: skip
_LEAN_VERSION = 1  # bump when _build_lean_fonts changes what it writes


def find_faces() -> dict[str, list[Path]]:
    """The system's files of each family in ``_FAMILIES`` (families not installed: absent)."""
    found: dict[str, list[Path]] = {}
    for family, (_generic, faces) in _FAMILIES.items():
        for folder in _FONT_DIRS:
            paths = [Path(folder, face) for face in faces if Path(folder, face).is_file()]
            if paths:
                found[family] = paths
                break
    return found


def _build_lean_fonts(family: str, faces: Sequence[Path], folder: Path) -> list[Path]:
    """Lean copies of ``faces`` renamed to ``family + LEAN_SUFFIX``: cheap to subset."""
    from fontTools import subset  # type: ignore[import-untyped]
    from fontTools.ttLib import TTFont  # type: ignore[import-untyped]

    options = subset.Options(hinting=False, layout_features=[], notdef_outline=True,
                             name_IDs=["*"], name_languages=["*"], glyph_names=False,
                             legacy_kern=False, ignore_missing_unicodes=True)  # fmt: skip
    options.drop_tables += ["GSUB", "GPOS", "GDEF", "MATH", "BASE", "JSTF", "kern", "hdmx",
                            "VDMX", "LTSH", "FFTM", "DSIG"]  # fmt: skip
    unicodes = [c for low, high in _LEAN_RANGES for c in range(low, high + 1)]
    lean = family + LEAN_SUFFIX
    built = []
    for face in faces:
        font = TTFont(face)
        subsetter = subset.Subsetter(options)
        subsetter.populate(unicodes=unicodes)
        subsetter.subset(font)
        _common_glyphs_first(font)
        for record in font["name"].names:
            if record.nameID in (1, 3, 4, 6, 16):  # family, unique, full, PostScript names
                text = record.toUnicode()
                record.string = text.replace(family, lean).replace(
                    family.replace(" ", ""), lean.replace(" ", ""))
        target = folder / f"{face.stem}-lean{face.suffix}"
        font.save(target)
        built.append(target)
    return built


def _common_glyphs_first(font: Any) -> None:
    """Reorder glyphs: ASCII and common symbols get the lowest ids.

    WeasyPrint subsets with ``retain_gids``, so the cost of each PDF's subset grows with the
    highest glyph id it uses; one en dash late in the font used to cost every glyph before it.
    """
    font.ensureDecompiled()  # lazily loaded tables would read glyph ids by the new order
    glyf = font["glyf"]
    for name in font.getGlyphOrder():
        glyf[name].expand(glyf)  # composites name their components from ids when expanded
    cmap = font.getBestCmap()
    first = [font.getGlyphOrder()[0]]  # .notdef stays glyph 0
    seen = set(first)

    def add(name: str) -> None:
        if name not in seen:
            seen.add(name)
            first.append(name)
            if glyf[name].isComposite():
                for component in glyf[name].getComponentNames(glyf):
                    add(component)

    for code in _COMMON:
        if code in cmap:
            add(cmap[code])
    order = first + [g for g in font.getGlyphOrder() if g not in seen]
    font.setGlyphOrder(order)  # the remaining tables (glyf, hmtx, cmap) are keyed by name
    glyf.glyphOrder = order


def _fontconfig_file(folder: Path, final: Path, families: Iterable[str]) -> Path:
    """``folder/fonts.conf``: the system's config, plus each lean family (to be found in
    ``final``) preferred for its original."""
    rules = "".join(
        f'<match target="pattern"><test name="family" compare="eq"><string>{escape(name)}'
        f'</string></test><edit name="family" mode="prepend" binding="strong"><string>'
        f"{escape(family + LEAN_SUFFIX)}</string></edit></match>"
        for family in families
        for name in (family, _FAMILIES[family][0])
    )
    conf = folder / "fonts.conf"
    conf.write_text(
        '<?xml version="1.0"?><!DOCTYPE fontconfig SYSTEM "urn:fontconfig:fonts.dtd">'
        '<fontconfig><include ignore_missing="yes">/etc/fonts/fonts.conf</include>'
        f"<dir>{escape(str(final))}</dir><cachedir>{escape(str(final / 'cache'))}</cachedir>"
        f"{rules}</fontconfig>",
        "utf-8",
    )
    return conf


def lean_dir(faces: dict[str, list[Path]]) -> Path:
    """The lean fonts and their fontconfig file, built once per machine and font version.

    A directory in the temp dir named after the user and a digest of the inputs, owned by this
    user and closed to others (else rebuilt elsewhere): built in a private directory, then
    renamed into place, so racing workers each get a complete copy and killed workers leak
    nothing.
    """
    inputs = sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns)
                    for paths in faces.values() for p in paths)  # fmt: skip
    digest = hashlib.sha256(repr((_LEAN_VERSION, _LEAN_RANGES, _COMMON, inputs)).encode())
    name = f"billing-docfonts-{os.getuid()}-{digest.hexdigest()[:16]}"
    final = Path(tempfile.gettempdir()) / name
    if _usable(final):
        return final
    work = Path(tempfile.mkdtemp(prefix=f"{name}.", dir=final.parent))
    try:
        for family, paths in faces.items():
            _build_lean_fonts(family, paths, work)
        _fontconfig_file(work, final, faces)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    try:
        work.rename(final)
        return final
    except OSError:
        pass
    if _usable(final):  # another worker was first
        shutil.rmtree(work, ignore_errors=True)
        return final
    _fontconfig_file(work, work, faces)  # a foreign directory is in the way: a private copy
    return work


def _usable(folder: Path) -> bool:
    try:
        info = folder.stat()
    except OSError:
        return False
    return (info.st_uid == os.getuid() and not info.st_mode & 0o077
            and (folder / "fonts.conf").is_file())  # fmt: skip
