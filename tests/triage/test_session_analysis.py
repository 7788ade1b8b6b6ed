"""Rules of the explanatory analysis: importing pasted text, and the quality hints."""

from __future__ import annotations

from keerpunt.triage.analysis import (
    MAX_DRAFTS,
    DraftFactor,
    FactorFacts,
    quality_hints,
    split_analysis,
)

PASTED = """\
Verklarende analyse Sem (verslag wijkteam)

School
- Spijbelt sinds de verhuizing
- Mentor ziet hem graag (beschermend)

Thuis / gezin:
Voorbeschikkende factoren
* Moeder heeft zelf ADHD
In stand houdende factoren:
* Ruzie tussen de ouders over geld,
  vooral in het weekend
* Ruzie tussen de ouders over geld, vooral in het weekend
Vrije tijd: voetbalt bij VV Rood-Wit
"""


def test_headings_give_area_and_kind_to_the_lines_below_them() -> None:
    drafts = split_analysis(PASTED)
    assert drafts == [
        DraftFactor("Verklarende analyse Sem (verslag wijkteam)"),
        DraftFactor("Spijbelt sinds de verhuizing", life_area="school"),
        DraftFactor("Mentor ziet hem graag", life_area="school", kind="protective"),
        DraftFactor("Moeder heeft zelf ADHD", life_area="home", kind="predisposing"),
        # an indented line continues its bullet; the duplicate below it is dropped
        DraftFactor(
            "Ruzie tussen de ouders over geld, vooral in het weekend",
            life_area="home",
            kind="perpetuating",
        ),
        # "Label: text" applies to its own line only (and keeps the kind heading above it)
        DraftFactor("voetbalt bij VV Rood-Wit", life_area="free_time", kind="perpetuating"),
    ]


def test_an_ordinary_sentence_with_a_colon_is_not_taken_for_a_label() -> None:
    drafts = split_analysis("Opa zegt: hij is een harde werker\nBeschermend\nOpa helpt")
    assert drafts[0] == DraftFactor("Opa zegt: hij is een harde werker")
    assert drafts[1] == DraftFactor("Opa helpt", kind="protective")


def test_where_a_factor_sits_child_family_environment() -> None:
    drafts = split_analysis("Kindgebonden\n- Slaapt slecht\nOmgevingsfactoren\n- Onveilige buurt")
    assert [(d.text, d.bound_to) for d in drafts] == [
        ("Slaapt slecht", "child"),
        ("Onveilige buurt", "environment"),
    ]


def test_empty_or_only_headings_gives_nothing_and_windows_line_ends_work() -> None:
    assert split_analysis("") == []
    assert split_analysis("School\r\nThuis\r\n\r\n   \r\n") == []
    assert split_analysis("School\r\n- Te laat\r\n") == [DraftFactor("Te laat", "school")]


def test_a_huge_paste_is_capped_and_long_lines_are_cut() -> None:
    drafts = split_analysis("\n".join(f"Punt nummer {i}" for i in range(500)))
    assert len(drafts) == MAX_DRAFTS
    (long,) = split_analysis("x" * 10_000)
    assert len(long.text) == 4000


def _f(id: int, area: str, kind: str, *, draft: bool = False, length: int = 20) -> FactorFacts:
    return FactorFacts(id, area, kind, draft, length)


def test_quality_hints_name_gaps_without_deciding_for_the_team() -> None:
    factors = [
        _f(1, "school", "perpetuating"),
        _f(2, "home", "precipitating", length=900),
        _f(3, "", "", draft=True),
    ]
    hints = quality_hints(factors, links=[])
    assert hints["complete"] == [
        ("areas_empty", "free_time,health,network,finances"),
        ("no_protective", ""),
    ]
    assert hints["simple"] == [("too_long", "1")]
    assert hints["coherent"] == [("drafts_left", "1"), ("unlinked", "1")]
    assert hints["testable"] == []
    linked = quality_hints(factors, links=[(1, 2)])
    assert linked["coherent"] == [("drafts_left", "1")]


def test_the_link_hint_counts_one_factor_as_one_in_both_languages() -> None:
    from pathlib import Path
    from types import SimpleNamespace

    from keerpunt.platform import i18n
    from keerpunt.platform.web import make_jinja_env
    from keerpunt.triage.vocab import VOCAB

    env = make_jinja_env(Path(__file__).resolve().parents[2] / "templates")
    template = env.get_template("triage/_partials/quality.html")

    def hint(n: int, locale: str = "nl") -> str:
        board = SimpleNamespace(
            may_tick=False, qualities=set(), hints={"coherent": [("unlinked", str(n))]}
        )
        token = i18n.current_locale.set(locale)
        try:
            html = template.render(b=board, session_id=1, oob=False, vocab=VOCAB)
        finally:
            i18n.current_locale.reset(token)
        return " ".join(html.split('<li class="kp-hint">')[1].split("</li>")[0].split())

    assert hint(1) == "Zonder verband: 1 factor die iets in stand houdt."
    assert hint(3) == "Zonder verband: 3 factoren die iets in stand houden."
    assert hint(1, "en") == "Without a link: 1 factor that keeps something going."
    assert hint(3, "en") == "Without a link: 3 factors that keep something going."
