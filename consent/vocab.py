"""Labels for the consent vocabulary (Dutch message ids; templates translate them)."""

from __future__ import annotations

from keerpunt.platform.i18n import N_

CONSENT_VOCAB: dict[str, dict[str, str]] = {
    "purpose": {
        "registration": N_("Aanmelden bij het triageteam"),
        "information_exchange": N_("Informatie delen met genoemde partijen"),
        "report_sharing": N_("Verslag delen"),
        "ret_referral": N_("Doorverwijzen naar het RET"),
        "third_party_info": N_("Informatie opvragen bij school of huisarts"),
    },
    "obtained_how": {
        "in_person": N_("In gesprek"),
        "phone": N_("Telefonisch"),
        "written": N_("Schriftelijk"),
    },
    "decision": {"consent": N_("Toestemming"), "objection": N_("Bezwaar")},
    "recipient_role": {"triage_member": N_("Het triageteam")},
    "staff_role": {
        "registrar": N_("Aanmelder"),
        "coordinator": N_("Coördinator"),
        "triage_member": N_("Triageteam"),
        "finance": N_("Financiële administratie"),
        "allocation_manager": N_("Zorgbemiddeling"),
        "funder": N_("Financier (gemeente)"),
    },
    "youth_alone_ground": {
        "serious_harm": N_("Zonder deze hulp krijgt de jeugdige duidelijk ernstig nadeel."),
        "youth_persists": N_(
            "De ouders weigerden, maar de jeugdige blijft de hulp goed overwogen willen."
        ),
    },
}
