"""Flask extensions, created unbound here and bound to the app in `create_app`."""
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

# Stable constraint names so Alembic migrations are the same on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# Rows stay loaded after a commit: a request that commits (a launch, a state check) and then
# reads the same rows (a log line, the redirect) would otherwise reload each of them, one
# SELECT apiece. Code that needs what another transaction wrote since asks for it
# (`db.session.refresh`, a new query); an UPDATE through the session keeps loaded rows in step.
db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})
