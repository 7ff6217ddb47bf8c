"""Flask-Migrate on demand: `flask db …`, `upgrade_database` and migrations/env.py set it up at
their first use, not every process at start.

Flask-Migrate imports Alembic, and Alembic imports Mako and Pygments: 12 MB in each gunicorn
worker (which never migrates) and a quarter of a second at start. `app.extensions["migrate"]`
is made when something first asks for it, and the `db` command group is a stand-in that loads
Flask-Migrate's own group when the command line reaches it.
"""
from __future__ import annotations

import click
from flask import Flask


class Extensions(dict):
    """`app.extensions`, making Flask-Migrate's entry the first time it is read with `[]` (as
    Flask-Migrate and migrations/env.py read it)."""

    def __init__(self, app: Flask, db, directory: str):
        super().__init__(app.extensions)
        self._app, self._db, self._directory = app, db, directory

    def __missing__(self, key):
        if key != "migrate":
            raise KeyError(key)
        from flask_migrate import Migrate

        Migrate(self._app, self._db, directory=self._directory)  # sets self["migrate"], adds `db`
        return dict.__getitem__(self, "migrate")


class _DatabaseCommands(click.Group):
    """`flask db`: Flask-Migrate's group, loaded when the command line gets here."""

    def __init__(self, app: Flask):
        super().__init__(name="db", help="Perform database migrations (Flask-Migrate).")
        self._app = app

    def _real(self) -> click.Group:
        _ = self._app.extensions["migrate"]  # sets Flask-Migrate up (Extensions.__missing__)
        from flask_migrate.cli import db as commands

        return commands

    def make_context(self, info_name, args, parent=None, **extra):
        # The real group parses its own options (-d, -x) and runs its callback and commands.
        return self._real().make_context(info_name, args, parent=parent, **extra)

    def list_commands(self, ctx):
        return self._real().list_commands(ctx)

    def get_command(self, ctx, name):
        return self._real().get_command(ctx, name)


def init_app(app: Flask, db, directory: str) -> None:
    app.extensions = Extensions(app, db, directory)
    app.cli.add_command(_DatabaseCommands(app))
