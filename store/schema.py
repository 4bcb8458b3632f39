"""Creating and checking the schema: Alembic migrations, run by `remediate db upgrade`.

The application never creates tables on the fly. `open_engine` compares the database's Alembic
revision with the newest one this code ships and refuses an unmigrated or outdated database
with `StoreNotMigrated`, whose message names the command that fixes it: writing incidents into
tables of another shape would lose exactly what the store is for.
"""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

UPGRADE_COMMAND = "remediate db upgrade"


class StoreNotMigrated(RuntimeError):
    """The database's schema is not the one this code expects; the message says what to run."""


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", "store:migrations")
    # ConfigParser interpolation: a literal % in a password must be doubled.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None, "store/migrations has no revision"
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def check_migrated(engine: Engine, shown_url: str) -> None:
    """Raise StoreNotMigrated unless the database is at this code's head revision."""
    head = head_revision()
    current = current_revision(engine)
    if current == head:
        return
    known = {
        r.revision
        for r in ScriptDirectory.from_config(alembic_config("sqlite://")).walk_revisions()
    }
    if current is None:
        problem = "has no incident tables yet"
    elif current in known:
        problem = f"is at schema revision {current}; this version needs {head}"
    else:
        raise StoreNotMigrated(
            f"the incident store at {shown_url} is at schema revision {current}, which this "
            f"version does not know (a newer version migrated it?); upgrade remediate instead"
        )
    raise StoreNotMigrated(
        f"the incident store at {shown_url} {problem}: run `{UPGRADE_COMMAND}` "
        "(REMEDIATE_STORE__URL selects the database)"
    )


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)
