"""The explanatory analysis (verklarende analyse) as plain rules, without a database.

- :func:`split_analysis` turns an analysis pasted as text (often a Word document with
  headings per life area or per kind of factor, and bullet lists) into draft factors that
  the table then structures.
- :func:`quality_hints` points at what the four qualities ask for (volledig, eenvoudig,
  samenhangend, toetsbaar); the team itself ticks them off.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "MAX_DRAFTS",
    "QUALITIES",
    "DraftFactor",
    "FactorFacts",
    "quality_hints",
    "split_analysis",
]

MAX_DRAFTS = 200
MAX_TEXT = 4000
LONG_TEXT = 300  # longer than this is hard to read aloud at the table
QUALITIES = ("complete", "simple", "coherent", "testable")
LIFE_AREAS = ("school", "home", "free_time", "health", "network", "finances")


@dataclass(frozen=True)
class DraftFactor:
    """One factor found in pasted text; "" where the text did not say."""

    text: str
    life_area: str = ""
    kind: str = ""
    bound_to: str = ""


# Words (lower case, as tokens) that name a life area, a kind of factor, or where a factor
# sits. Multi-word phrases are tuples of tokens.
_KEYWORDS: dict[tuple[str, ...], tuple[str, str]] = {}


def _add(field: str, value: str, *phrases: str) -> None:
    for phrase in phrases:
        _KEYWORDS[tuple(phrase.split())] = (field, value)


_add("life_area", "school", "school", "onderwijs", "opleiding", "werk", "dagbesteding")
_add("life_area", "home", "thuis", "thuissituatie", "gezin", "gezinssituatie", "opvoeding")
_add("life_area", "free_time", "vrije tijd", "vrijetijd", "hobby", "hobby's", "sport")
_add("life_area", "health", "gezondheid", "lichamelijk", "psychisch", "welzijn")
_add("life_area", "network", "netwerk", "sociaal netwerk", "vrienden", "familie", "sociaal")
_add("life_area", "finances", "geld", "financiën", "financien", "schulden", "inkomen")
_add(
    "kind",
    "predisposing",
    "voorbeschikkend",
    "voorbeschikkende",
    "predisponerend",
    "predisponerende",
    "aanleg",
)
_add(
    "kind",
    "precipitating",
    "uitlokkend",
    "uitlokkende",
    "luxerend",
    "luxerende",
    "aanleiding",
    "aanleidingen",
)
_add(
    "kind",
    "perpetuating",
    "in stand houdend",
    "in stand houdende",
    "instandhoudend",
    "instandhoudende",
    "onderhoudend",
    "onderhoudende",
    "houdt in stand",
)
_add(
    "kind",
    "protective",
    "beschermend",
    "beschermende",
    "protectief",
    "protectieve",
    "krachten",
    "sterke kanten",
    "wat helpt",
)
_add("bound_to", "child", "kind", "kindgebonden", "kindfactoren", "jeugdige")
_add("bound_to", "family", "gezinsgebonden", "gezinsfactoren", "ouders")
_add("bound_to", "environment", "omgeving", "omgevingsgebonden", "omgevingsfactoren")

_FILLER = frozenset(
    "factor factoren de het een en of van in op leefgebied leefgebieden gebied punten "
    "rondom rond bij".split()
)
_LONGEST = max(len(k) for k in _KEYWORDS)
_TOKEN = re.compile(r"[a-zà-ÿ']+")
_BULLET = re.compile(r"^\s*(?:[-*•·–—▪◦o]|\d{1,2}[.)]|[a-z][.)])\s+", re.IGNORECASE)
_HEADING_MARK = re.compile(r"^\s*#{1,6}\s*|^\s*\*\*|\*\*\s*$")
_LABEL = re.compile(r"^\s*([^:]{2,40}):\s*(.*)$")
_TAG = re.compile(r"\s*[(\[]([^()\[\]]{2,40})[)\]]\s*$")


def _classify(label: str) -> dict[str, str] | None:
    """What a short label names ({"life_area": ..., "kind": ...}), or None when any word
    in it is not a known keyword: then it is ordinary text, not a label."""
    tokens = _TOKEN.findall(label.lower())
    found: dict[str, str] = {}
    i = 0
    while i < len(tokens):
        for size in range(min(_LONGEST, len(tokens) - i), 0, -1):
            hit = _KEYWORDS.get(tuple(tokens[i : i + size]))
            if hit is not None:
                found.setdefault(hit[0], hit[1])
                i += size
                break
        else:
            if tokens[i] not in _FILLER:
                return None
            i += 1
    return found or None


def _clean(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip(" \t-–—:;")
    return text[:MAX_TEXT]


def split_analysis(text: str) -> list[DraftFactor]:
    """Split an existing analysis, pasted as text, into draft factors.

    A line that only names a life area, a kind of factor (voorbeschikkend, uitlokkend,
    in stand houdend, beschermend) or where it sits (kind, gezin, omgeving) is a heading: it
    applies to the lines below it until the next heading of the same sort. "School: ..."
    applies to that line only, as does a tag at the end ("... (beschermend)"). Every other
    line, or bullet, is one factor; an indented line continues the bullet above it.
    Duplicates are dropped; at most :data:`MAX_DRAFTS` factors.
    """
    context: dict[str, str] = {}
    drafts: list[DraftFactor] = []
    seen: set[str] = set()
    current: list[str] | None = None  # the words of the factor being collected
    current_ctx: dict[str, str] = {}

    def flush() -> None:
        nonlocal current
        if current is None:
            return
        body = _clean(" ".join(current))
        current = None
        if not body or body.lower() in seen or len(drafts) >= MAX_DRAFTS:
            return
        seen.add(body.lower())
        drafts.append(
            DraftFactor(
                body,
                current_ctx.get("life_area", ""),
                current_ctx.get("kind", ""),
                current_ctx.get("bound_to", ""),
            )
        )

    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if not raw.strip():
            flush()
            continue
        bullet = _BULLET.match(raw)
        continuation = (
            current is not None and not bullet and raw[:1] in (" ", "\t") and raw.strip() != ""
        )
        if continuation:
            assert current is not None
            current.append(raw.strip())
            continue
        flush()
        line = _HEADING_MARK.sub("", raw[bullet.end() :] if bullet else raw).strip()
        heading = _classify(line.rstrip(":"))
        if heading is not None and not bullet:
            context.update(heading)
            continue
        line_ctx = dict(context)
        label = _LABEL.match(line)
        if label and (named := _classify(label.group(1))) is not None:
            line_ctx.update(named)
            line = label.group(2)
        tag = _TAG.search(line)
        if tag and (named := _classify(tag.group(1))) is not None:
            line_ctx.update(named)
            line = line[: tag.start()]
        if not line.strip():
            continue
        current = [line]
        current_ctx = line_ctx
    flush()
    return drafts


@dataclass(frozen=True)
class FactorFacts:
    """What the quality hints need to know of a factor (no text: only its length)."""

    id: int
    life_area: str
    kind: str
    draft: bool
    length: int


def quality_hints(
    factors: Sequence[FactorFacts], links: Iterable[tuple[int, int]]
) -> dict[str, list[tuple[str, str]]]:
    """Hints per quality, as (message key, detail) pairs, for the team to weigh.

    - complete: the life areas without any factor ("school,home"), and the absence of
      protective factors;
    - simple: how many factors are too long to read aloud at the table;
    - coherent: how many drafts are not yet structured, and how many factors that keep
      things going (in stand houdend) have no link to what they keep going.
    Testable is left to the team: whether a factor can be checked is not visible in data.
    """
    hints: dict[str, list[tuple[str, str]]] = {q: [] for q in QUALITIES}
    structured = [f for f in factors if not f.draft]
    covered = {f.life_area for f in structured}
    empty = [area for area in LIFE_AREAS if area not in covered]
    if empty:
        hints["complete"].append(("areas_empty", ",".join(empty)))
    if structured and not any(f.kind == "protective" for f in structured):
        hints["complete"].append(("no_protective", ""))
    if long := sum(1 for f in factors if f.length > LONG_TEXT):
        hints["simple"].append(("too_long", str(long)))
    if drafts := sum(1 for f in factors if f.draft):
        hints["coherent"].append(("drafts_left", str(drafts)))
    sources = {source for source, _target in links}
    unlinked = sum(1 for f in structured if f.kind == "perpetuating" and f.id not in sources)
    if unlinked:
        hints["coherent"].append(("unlinked", str(unlinked)))
    return hints
