"""The command line: `flask --app wsgi platform add|list`, `keys rotate|list`, `serve`, `worker`,
`webhooks replay|prune`.

(`db upgrade` comes from Flask-Migrate.) Each command prints what it did and exits non-zero
with a clear message on bad input.
"""
from __future__ import annotations

from urllib.parse import urlsplit

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from .lti.registrations import RegistrationConfigError, add_database_platform

platform_cli = AppGroup("platform", help="Register learning platforms (LMSs).")
webhooks_cli = AppGroup("webhooks", help="Provider events received by the tool.")
keys_cli = AppGroup("keys", help="The tool's signing keys.")


def _require_url(value: str, name: str) -> str:
    parts = urlsplit(value or "")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise click.BadParameter(f"must be an http(s) URL, got {value!r}", param_hint=name)
    return value


@platform_cli.command("add")
@click.option("--issuer", required=True, help="The platform's issuer (Moodle: its wwwroot).")
@click.option("--client-id", required=True, help="The client id the platform gave the tool.")
@click.option("--deployment-id", required=True, help="The deployment id (Moodle: the tool's type id).")
@click.option("--auth-login-url", required=True, help="Authentication request URL (Moodle: …/mod/lti/auth.php).")
@click.option("--token-url", required=True, help="Access token URL (Moodle: …/mod/lti/token.php).")
@click.option("--jwks-url", required=True, help="Public keyset URL (Moodle: …/mod/lti/certs.php).")
def platform_add(issuer, client_id, deployment_id, auth_login_url, token_url, jwks_url):
    """Register a platform, or add a deployment id to a registered one."""
    for value, name in (
        (issuer, "--issuer"), (auth_login_url, "--auth-login-url"), (token_url, "--token-url"), (jwks_url, "--jwks-url")
    ):
        _require_url(value, name)
    for value, name in ((client_id, "--client-id"), (deployment_id, "--deployment-id")):
        if not value.strip():
            raise click.BadParameter("must not be empty", param_hint=name)
    try:
        row, created = add_database_platform(
            current_app.extensions["registrations"],
            issuer=issuer,
            client_id=client_id.strip(),
            deployment_id=deployment_id.strip(),
            auth_login_url=auth_login_url,
            auth_token_url=token_url,
            key_set_url=jwks_url,
        )
    except RegistrationConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    verb = "registered" if created else "updated"
    deployments = ", ".join(d.deployment_id for d in row.deployments)
    click.echo(f"{verb} platform {row.issuer} (client id {row.client_id}); deployments: {deployments}")


@platform_cli.command("list")
def platform_list():
    """List every registration, from TOOL_CONFIG and from the database."""
    store = current_app.extensions["registrations"]
    registrations = store.all()
    if not registrations:
        click.echo("no platforms registered (use `flask --app wsgi platform add …` or TOOL_CONFIG)")
    for reg in registrations:
        deployments = ", ".join(sorted(reg.deployment_ids)) or "(none)"
        click.echo(f"{reg.issuer}  client_id={reg.client_id}  deployments={deployments}  source={reg.source}")
        click.echo(f"    login={reg.auth_login_url}  token={reg.auth_token_url}  jwks={reg.key_set_url}")
    for row in store.shadowed():
        click.echo(
            f"warning: database registration {row.issuer} / {row.client_id} is shadowed by TOOL_CONFIG and not live"
        )


@keys_cli.command("rotate")
def keys_rotate():
    """Add a new signing key; the old public keys stay published in the JWKS."""
    key_ring = current_app.extensions["key_ring"]
    key = key_ring.rotate()
    click.echo(f"new signing key {key.kid} written to {key.path}")
    click.echo(f"published keys: {', '.join(k['kid'] for k in key_ring.jwks()['keys'])}")


@keys_cli.command("list")
def keys_list():
    """Show the published keys and which one signs."""
    key_ring = current_app.extensions["key_ring"]
    signing = key_ring.signing_key.kid
    for key in key_ring.all_keys():
        marker = "signing" if key.kid == signing else "published"
        click.echo(f"{key.kid}  {marker}  {key.path}")


def registration_values(base_url: str) -> list[tuple[str, str]]:
    return [
        ("Tool URL", base_url + "/lti/launch"),
        ("Initiate login URL", base_url + "/lti/login"),
        ("Redirection URI(s)", base_url + "/lti/launch"),
        ("Public keyset URL", base_url + "/.well-known/jwks.json"),
        ("Dynamic registration URL", base_url + "/lti/register  (coming soon: use the values above)"),
    ]


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
def serve(host, port):
    """Run the tool on this machine (embedded default), printing what an LMS admin needs."""
    base = current_app.config["TOOL_BASE_URL"]
    click.echo("Live-class LTI tool. Values for the LMS administrator (Moodle: Site administration >")
    click.echo("Plugins > Activity modules > External tool > Manage tools > configure a tool manually):")
    for label, value in registration_values(base):
        click.echo(f"  {label:<26} {value}")
    if urlsplit(base).port not in (port, None) or urlsplit(base).hostname not in (host, "localhost"):
        click.echo(f"note: TOOL_BASE_URL is {base}; set it to the address the LMS reaches this server at")
    click.echo(f"Listening on http://{host}:{port} (database: {current_app.config['DATABASE_URL']})")
    # The embedded default delivers grades from a thread of its own (no separate worker).
    from .worker import start_worker_thread

    start_worker_thread(current_app._get_current_object())
    # werkzeug's server directly: Flask refuses app.run() inside its own CLI. Its request log
    # hides the query values of the tool's routes (lti_tool/access_log.py).
    from werkzeug.serving import run_simple

    from .access_log import QuietRequestHandler

    run_simple(host, port, current_app._get_current_object(), threaded=True, use_reloader=False,
               request_handler=QuietRequestHandler)


@click.command("worker")
@click.option("--once", is_flag=True, help="Do one pass and exit (for cron or a test).")
def worker(once):
    """Run queued work: score deliveries and their retries, rosters, the attendance safety net."""
    from .worker import Worker

    runner = Worker(current_app._get_current_object())
    if once:
        click.echo(f"worker pass done: {runner.run_once()} item(s) handled")
        return
    click.echo("worker running (Ctrl+C to stop)")
    try:
        runner.run_forever()
    except KeyboardInterrupt:
        click.echo("worker stopped")


@webhooks_cli.command("replay")
@click.option("--include-failed/--unknown-only", default=True, show_default=True,
              help="Also re-apply events whose application failed.")
def webhooks_replay(include_failed):
    """Apply stored events again: those for meetings that were unknown, and failed ones."""
    from .attendance.service import replay

    statuses = ("pending", "unknown_meeting", "failed") if include_failed else ("pending", "unknown_meeting")
    counts = replay(statuses)
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "nothing to replay"
    click.echo(f"replayed {sum(counts.values())} event(s): {summary}")


@webhooks_cli.command("prune")
@click.option("--older-than-hours", type=click.FloatRange(min=0), default=None,
              help="Retention in hours (default: UNKNOWN_EVENT_RETENTION_HOURS).")
def webhooks_prune(older_than_hours):
    """Delete events of meetings the tool does not know, once their retention has passed."""
    from datetime import timedelta

    from .attendance.service import prune_unknown_events

    hours = current_app.config["UNKNOWN_EVENT_RETENTION_HOURS"] if older_than_hours is None else older_than_hours
    deleted, cutoff = prune_unknown_events(timedelta(hours=hours))
    click.echo(f"deleted {deleted} event(s) of unknown meetings received before "
               f"{cutoff.isoformat(timespec='seconds')} (retention {hours:g} h)")


def init_app(app: Flask) -> None:
    app.cli.add_command(platform_cli)
    app.cli.add_command(keys_cli)
    app.cli.add_command(serve)
    app.cli.add_command(worker)
    app.cli.add_command(webhooks_cli)


# --- video settings per platform (one tool, several institutions) ----------------------------------
def _print_settings(issuer: str, client_id: str, settings: dict[str, str]) -> None:
    from .lti.platform_settings import shown_value

    if not settings:
        click.echo(f"{issuer} / {client_id}: the environment's video settings")
        return
    click.echo(f"{issuer} / {client_id}: own video settings (the environment's for the rest)")
    for name in sorted(settings):
        click.echo(f"  {name} = {shown_value(name, settings[name])}")


@platform_cli.command("set")
@click.option("--issuer", required=True, help="The platform's issuer.")
@click.option("--client-id", required=True, help="Its client id.")
@click.argument("assignments", nargs=-1, required=True, metavar="NAME=VALUE...")
def platform_set(issuer, client_id, assignments):
    """Give a registered platform its own video settings (VIDEO_PROVIDER, BBB_…, LIVEKIT_…)."""
    from .lti.platform_settings import PlatformSettingsError, change_settings

    values = {}
    for assignment in assignments:
        name, equals, value = assignment.partition("=")
        if not equals or not name.strip():
            raise click.BadParameter(f"expected NAME=VALUE, got {assignment!r}", param_hint="NAME=VALUE")
        values[name.strip()] = value.strip()
    try:
        settings = change_settings(issuer, client_id, values, [])
    except PlatformSettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    _print_settings(issuer, client_id, settings)


@platform_cli.command("unset")
@click.option("--issuer", required=True, help="The platform's issuer.")
@click.option("--client-id", required=True, help="Its client id.")
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
def platform_unset(issuer, client_id, names):
    """Remove a platform's own video settings: it uses the environment's for those again."""
    from .lti.platform_settings import PlatformSettingsError, change_settings

    try:
        settings = change_settings(issuer, client_id, {}, list(names))
    except PlatformSettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    _print_settings(issuer, client_id, settings)
