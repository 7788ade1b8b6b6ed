"""Labels for the triage vocabulary (Dutch message ids; templates translate them)."""

from __future__ import annotations

VOCAB: dict[str, dict[str, str]] = {
    "life_area": {
        "school": "School",
        "home": "Thuis",
        "free_time": "Vrije tijd",
        "health": "Gezondheid",
        "network": "Netwerk",
        "finances": "Geld",
    },
    "factor_kind": {
        "predisposing": "Voorbeschikkend (was er al)",
        "precipitating": "Uitlokkend (zette het in gang)",
        "perpetuating": "In stand houdend (houdt het in gang)",
        "protective": "Beschermend (helpt)",
    },
    "help_form": {
        "ambulant": "Ambulant",
        "day_treatment": "Dagbehandeling (stoel)",
        "short_stay": "Kort verblijf (bed)",
        "foster_care": "Pleegzorg",
    },
    "status": {
        "registered": "Aangemeld",
        "scheduled": "Gepland",
        "in_triage": "In bespreking",
        "arrangement_agreed": "Arrangement afgesproken",
        "planned": "Gepland",
        "open": "Bezig",
        "closed": "Gesloten",
    },
    "purpose": {
        "registration": "Aanmelden bij het triageteam",
        "information_exchange": "Informatie delen met genoemde partijen",
        "report_sharing": "Verslag delen",
        "ret_referral": "Doorverwijzen naar het RET",
        "third_party_info": "Informatie opvragen bij school of huisarts",
    },
    "obtained_how": {"in_person": "In gesprek", "phone": "Telefonisch", "written": "Schriftelijk"},
    "decision": {"consent": "Toestemming", "objection": "Bezwaar"},
}
