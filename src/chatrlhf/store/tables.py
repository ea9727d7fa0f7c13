"""Every table of the schema, on one ``Base``: the store's own (``models``), the trainer
workspace's ``ws_*`` tables (``workspace_tables``) and the arena's ``arena_picks``
(``arena_tables``).

Alembic (``migrations/env.py``) and ``Store.counts`` read ``Base.metadata`` from here, so a new
table module is added to this import list. ``models`` itself imports no table module: a table
module imports ``models`` for ``Base``, and nothing imports back.
"""

from chatrlhf.store import arena_tables  # noqa: F401  (registers arena_picks on Base)
from chatrlhf.store import workspace_tables  # noqa: F401  (registers the ws_* tables on Base)
from chatrlhf.store.models import Base

__all__ = ["Base"]
