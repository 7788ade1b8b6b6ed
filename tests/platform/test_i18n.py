"""The English catalogue stays in step with the code.

Message ids are the Dutch texts. Every id that the code marks (``_``, ``N_``, ``gettext``,
``ngettext`` in Python; ``_`` and friends in the templates) needs a plain English
translation in ``platform/locale/en/LC_MESSAGES/messages.po``, with the same placeholders,
and the catalogue keeps no entries the code no longer uses.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterator
from functools import cache
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from keerpunt.platform import i18n
from keerpunt.platform.web import make_jinja_env

ROOT = Path(__file__).resolve().parents[2]
PO_FILE = ROOT / "platform" / "locale" / "en" / "LC_MESSAGES" / "messages.po"
PYTHON_FOLDERS = ("platform", "consent", "triage", "settlement")
KEYWORDS = {"_": None, "N_": None, "gettext": None, "ngettext": (1, 2)}
# %(name)s, %(left)d, ... and a literal %% (Jinja's newstyle gettext always applies %).
_PLACEHOLDER = re.compile(r"%(?:\([^)]*\))?[#0 +-]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa%]")


def _wanted_directory(path: str) -> bool:
    # Babel skips folders starting with "_" by default; templates keep fragments in _partials.
    name = os.path.basename(path)
    return not name.startswith(".") and name != "__pycache__"


def _extract(
    folder: Path, pattern: str, method: str, options: dict[str, str] | None = None
) -> Iterator[tuple[str, str]]:
    found = extract_from_dir(
        str(folder),
        [(pattern, method)],
        options_map={pattern: options or {}},
        keywords=KEYWORDS,
        directory_filter=_wanted_directory,
    )
    for filename, lineno, message, _comments, _context in found:
        where = f"{folder.name}/{filename}:{lineno}"
        for msgid in message if isinstance(message, tuple) else (message,):
            if msgid:
                yield msgid, where


@cache
def code_msgids() -> dict[str, list[str]]:
    """Every message id in the code, with where it occurs."""
    ids: dict[str, list[str]] = {}
    for folder in PYTHON_FOLDERS:
        for msgid, where in _extract(ROOT / folder, "**.py", "python"):
            ids.setdefault(msgid, []).append(where)
    for pattern in ("**.html", "**.txt"):
        for msgid, where in _extract(
            ROOT / "templates",
            pattern,
            "jinja2.ext:babel_extract",
            {"extensions": "jinja2.ext.i18n"},
        ):
            ids.setdefault(msgid, []).append(where)
    return ids


@cache
def english() -> Catalog:
    with PO_FILE.open("rb") as fh:
        return read_po(fh, locale="en")


def _placeholders(text: str) -> Counter[str]:
    return Counter(_PLACEHOLDER.findall(text))


def test_extraction_finds_python_and_template_ids() -> None:
    ids = code_msgids()
    assert "Dit kan niet." in ids  # platform/errors.py, N_
    assert "Inloggen bij Keerpunt" in ids  # templates/auth/login.html
    assert "Uitnodiging intrekken" in ids  # templates/auth/_partials: underscore folders count


def test_catalogue_is_english() -> None:
    assert str(english().locale) == "en"


def test_every_msgid_has_an_english_translation() -> None:
    cat = english()
    missing = []
    for msgid, where in sorted(code_msgids().items()):
        message = cat.get(msgid)
        if message is None or not str(message.string).strip() or message.fuzzy:
            missing.append(f"{msgid!r} ({', '.join(where)})")
    assert not missing, "No English translation for:\n" + "\n".join(missing)


def test_translations_keep_the_placeholders() -> None:
    wrong = []
    for message in english():
        if not message.id or not message.string:
            continue
        if _placeholders(str(message.id)) != _placeholders(str(message.string)):
            wrong.append(f"{message.id!r} -> {message.string!r}")
    assert not wrong, "Placeholders differ:\n" + "\n".join(wrong)


def test_catalogue_has_no_entries_the_code_no_longer_uses() -> None:
    cat = english()
    ids = code_msgids()
    unused = sorted(str(m.id) for m in cat if m.id and m.id not in ids)
    obsolete = sorted(str(msgid) for msgid in cat.obsolete)
    assert not unused and not obsolete, (
        "In messages.po but not in the code:\n"
        + "\n".join(map(repr, unused))
        + "\nObsolete (#~) entries:\n"
        + "\n".join(map(repr, obsolete))
    )


def test_gettext_gives_english_when_the_locale_is_en() -> None:
    token = i18n.current_locale.set("en")
    try:
        assert i18n.gettext("Inloggen") == "Log in"
        assert i18n.gettext("Kies uw organisatie") == "Choose your organisation"
        assert i18n.gettext("Nog niet vertaald, blijft Nederlands") == (
            "Nog niet vertaald, blijft Nederlands"
        )
    finally:
        i18n.current_locale.reset(token)
    assert i18n.gettext("Inloggen") == "Inloggen"


def test_templates_render_english_with_placeholders() -> None:
    env = make_jinja_env(ROOT / "templates")
    template = env.from_string('{{ _("Log in als %(name)s", name=who) }}')
    token = i18n.current_locale.set("en")
    try:
        assert template.render(who="Sam <b>") == "Log in as Sam &lt;b&gt;"
    finally:
        i18n.current_locale.reset(token)
    assert template.render(who="Sam") == "Log in als Sam"
