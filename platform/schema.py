"""All tables of every domain, for migrations and tests (import order does not matter)."""

from __future__ import annotations

from sqlalchemy import MetaData

from keerpunt.consent import models as _consent  # noqa: F401
from keerpunt.platform import models as _platform  # noqa: F401
from keerpunt.platform.db import Base
from keerpunt.settlement import models as _settlement  # noqa: F401
from keerpunt.triage import models as _triage  # noqa: F401

metadata: MetaData = Base.metadata
