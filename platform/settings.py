"""Settings, read once from the environment (``KEERPUNT_*``).

Secrets are wrapped in :class:`starlette.datastructures.Secret` so they never end up in a log
line or a traceback by accident. Outside demo mode a missing or placeholder secret stops start-up.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from starlette.datastructures import Secret

PACKAGE_ROOT = Path(__file__).resolve().parent
# templates/ and static/ ship as the packages keerpunt.templates and keerpunt.static; resolve
# them through the import system so the working directory never matters.
_DEMO_SECRET = "demo-only-not-a-secret-change-me"  # noqa: S105 - a placeholder by design
_PLACEHOLDERS = {"", "changeme", "change-me", "secret", _DEMO_SECRET}
# A fixed demo master key: demo data only. Refused outside demo mode.
_DEMO_MASTER_KEY = "v1:" + base64.urlsafe_b64encode(b"keerpunt-demo-master-key-32bytes").decode()


class ConfigurationError(RuntimeError):
    """Start-up refused because the configuration is unsafe or incomplete."""


def _package_dir(name: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigurationError(f"package {name} not found; is keerpunt installed?")
    return Path(next(iter(spec.submodule_search_locations))).resolve()


@dataclass(frozen=True)
class Settings:
    database_url: str
    secret_key: Secret
    master_keys: Secret  # "v2:<b64>,v1:<b64>": first is current, the rest can still unwrap
    bsn_index_key: Secret
    demo_mode: bool = False
    base_url: str = "http://127.0.0.1:8000"
    behind_tls: bool = False
    session_hours: int = 12
    invitation_days: int = 14
    default_locale: str = "nl"
    templates_dir: Path = field(default_factory=lambda: _package_dir("keerpunt.templates"))
    static_dir: Path = field(default_factory=lambda: _package_dir("keerpunt.static"))
    # Per-organisation OIDC client secrets come from the environment, never the database:
    # KEERPUNT_OIDC_SECRET_<ORG_ID>. Kept as a mapping org id -> Secret.
    oidc_client_secrets: Mapping[int, Secret] = field(default_factory=dict)
    # Retention (seed 003 §5.4): personal data no longer than the pilot; a closed case keeps
    # it for one monitoring quarter, then it is shredded; the non-personal KPI rows stay two
    # years. pilot_end is the pilot's last day (Europe/Amsterdam); None: not yet decided.
    pilot_end: dt.date | None = None
    retention_days_after_close: int = 90
    kpi_retention_months: int = 24

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        demo = env.get("KEERPUNT_DEMO", "0").lower() in {"1", "true", "yes"}
        secrets = {
            int(k.rsplit("_", 1)[1]): Secret(v)
            for k, v in env.items()
            if k.startswith("KEERPUNT_OIDC_SECRET_") and k.rsplit("_", 1)[1].isdigit()
        }
        settings = cls(
            database_url=env.get("KEERPUNT_DATABASE_URL", "sqlite+aiosqlite:///var/keerpunt.db"),
            secret_key=Secret(env.get("KEERPUNT_SECRET_KEY", _DEMO_SECRET if demo else "")),
            master_keys=Secret(env.get("KEERPUNT_MASTER_KEYS", _DEMO_MASTER_KEY if demo else "")),
            bsn_index_key=Secret(env.get("KEERPUNT_BSN_INDEX_KEY", _DEMO_SECRET if demo else "")),
            demo_mode=demo,
            base_url=env.get("KEERPUNT_BASE_URL", "http://127.0.0.1:8000").rstrip("/"),
            behind_tls=env.get("KEERPUNT_BEHIND_TLS", "0").lower() in {"1", "true", "yes"},
            default_locale=env.get("KEERPUNT_LOCALE", "nl"),
            oidc_client_secrets=secrets,
            pilot_end=_date_setting(env, "KEERPUNT_PILOT_END"),
            retention_days_after_close=_int_setting(env, "KEERPUNT_RETENTION_DAYS", 90),
            kpi_retention_months=_int_setting(env, "KEERPUNT_KPI_RETENTION_MONTHS", 24),
        )
        settings.check()
        return settings

    def check(self) -> None:
        """Refuse unsafe configurations; demo mode accepts the built-in placeholders."""
        if self.demo_mode:
            return
        problems = []
        for name, value in (
            ("KEERPUNT_SECRET_KEY", str(self.secret_key)),
            ("KEERPUNT_BSN_INDEX_KEY", str(self.bsn_index_key)),
        ):
            if value.strip().lower() in _PLACEHOLDERS or len(value) < 32:
                problems.append(f"{name} is missing, a placeholder, or shorter than 32 characters")
        keys = str(self.master_keys)
        if not keys or keys == _DEMO_MASTER_KEY:
            problems.append("KEERPUNT_MASTER_KEYS is missing or the demo key")
        if problems:
            raise ConfigurationError(
                "Keerpunt will not start outside demo mode with unsafe settings: "
                + "; ".join(problems)
                + ". Set them in the environment, or set KEERPUNT_DEMO=1 for a demo."
            )


def _date_setting(env: Mapping[str, str], name: str) -> dt.date | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a date like 2024-12-31, not {raw!r}") from None


def _int_setting(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit():
        raise ConfigurationError(f"{name} must be a whole number of zero or more, not {raw!r}")
    return int(raw)
