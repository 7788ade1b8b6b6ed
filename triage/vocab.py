"""Labels for the triage vocabulary (Dutch message ids; templates translate them)."""

from __future__ import annotations

from keerpunt.platform.i18n import N_

VOCAB: dict[str, dict[str, str]] = {
    "discipline": {
        "regiebehandelaar": N_("regiebehandelaar"),
        "systeembehandelaar": N_("systeembehandelaar"),
        "gezinsbehandelaar": N_("gezinsbehandelaar"),
        "gedragswetenschapper": N_("gedragswetenschapper"),
        "ervaringsdeskundige": N_("ervaringsdeskundige"),
        "onderwijsconsulent": N_("onderwijsconsulent"),
        "sociaal_domein": N_("sociaal domein en schulden"),
    },
    "life_area": {
        "school": N_("School"),
        "home": N_("Thuis"),
        "free_time": N_("Vrije tijd"),
        "health": N_("Gezondheid"),
        "network": N_("Netwerk"),
        "finances": N_("Geld"),
    },
    "factor_kind": {
        "predisposing": N_("Voorbeschikkend (was er al)"),
        "precipitating": N_("Uitlokkend (zette het in gang)"),
        "perpetuating": N_("In stand houdend (houdt het in gang)"),
        "protective": N_("Beschermend (helpt)"),
    },
    "bound_to": {
        "child": N_("Bij het kind"),
        "family": N_("In het gezin"),
        "environment": N_("In de omgeving"),
    },
    "step": {
        "1": N_("De JIM"),
        "2": N_("Verklarende analyse"),
        "3": N_("Perspectief en doelen"),
        "4": N_("Arrangement en procesregisseur"),
        "5": N_("Plan van aanpak"),
    },
    "quality": {
        "complete": N_("Volledig: alle leefgebieden en wat helpt staan erin"),
        "simple": N_("Eenvoudig: iedereen aan tafel begrijpt het"),
        "coherent": N_("Samenhangend: we zien wat wat in stand houdt"),
        "testable": N_("Toetsbaar: we kunnen nagaan of het klopt"),
    },
    # From light to heavy: ambulant first, a chair or a bed as backup (seed 003 §3.1).
    "help_form": {
        "ambulant": N_("Ambulant"),
        "intensive_ambulant": N_("Intensief ambulant (bij het gezin thuis)"),
        "day_treatment": N_("Dagbehandeling (stoel)"),
        "short_stay": N_("Kort verblijf (bed)"),
        "part_time_foster": N_("Deeltijdpleegzorg"),
        "foster_care": N_("Pleegzorg"),
        "residential": N_("Wonen in een groep (residentieel)"),
        "jeugdzorgplus": N_("JeugdzorgPlus (gesloten)"),
    },
    "intensity_unit": {
        "hour": N_("uur per week"),
        "dagdeel": N_("dagdelen per week"),
        "etmaal": N_("etmalen per week"),
    },
    "activity_status": {
        "open": N_("Nog niet begonnen"),
        "under_way": N_("Bezig"),
        "done": N_("Klaar"),
        "cancelled": N_("Gaat niet door"),
    },
    "plan_topic": {
        "informing": N_("Hoe houden we elkaar op de hoogte?"),
        "municipality": N_("Wat doet de gemeente?"),
        "crisis": N_("Wat doen we bij een crisis?"),
    },
    "status": {
        "registered": N_("Aangemeld"),
        "scheduled": N_("Gepland"),
        "in_triage": N_("In bespreking"),
        "arrangement_agreed": N_("Arrangement afgesproken"),
        # the case lifecycle (triage/lifecycle.py STATUS_LABELS)
        "consent_pending": N_("Wacht op toestemming"),
        "running": N_("Hulp loopt"),
        "extended": N_("Verlengd"),
        "stepped_down": N_("Afgeschaald"),
        "crisis_pause": N_("Gepauzeerd door crisis"),
        "ret": N_("Bij het RET"),
        "planned": N_("Gepland"),
        "open": N_("Bezig"),
        "closed": N_("Gesloten"),
    },
}
