"""Alembic environment: the engine is handed in by crm_inbox.db (no alembic.ini needed)."""

from alembic import context
from sqlalchemy import create_engine

from crm_inbox.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations() -> None:
    engine = config.attributes.get("engine")
    if engine is None:  # plain `alembic` command line: url from -x url=… or the ini
        url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
        engine = create_engine(url)
    with engine.begin() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=True,  # SQLite can only ALTER through table copies
            compare_type=True,
        )
        context.run_migrations()


run_migrations()
