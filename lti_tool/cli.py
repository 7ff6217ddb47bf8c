"""The command line: `flask --app wsgi platform add|list|show|disable|enable|delete`,
`keys rotate|list`, `serve`, `worker`, `webhooks replay|prune`.

(`db upgrade` comes from Flask-Migrate.) Each command prints what it did and exits non-zero
with a clear message on bad input.
"""
from __future__ import annotations

from urllib.parse import urlsplit

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from .lti import platform_admin
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
@click.option("--token-audience", default=None,
              help="The aud of the tool's token requests when the platform names one (Brightspace's OAuth2 "
                   "audience); default: the token URL.")
def platform_add(issuer, client_id, deployment_id, auth_login_url, token_url, jwks_url, token_audience):
    """Register a platform, or add a deployment id to a registered one."""
    urls = [(issuer, "--issuer"), (auth_login_url, "--auth-login-url"), (token_url, "--token-url"),
            (jwks_url, "--jwks-url")]
    for value, name in urls + ([(token_audience, "--token-audience")] if token_audience is not None else []):
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
            auth_audience=token_audience,
        )
    except RegistrationConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    verb = "registered" if created else "updated"
    deployments = ", ".join(d.deployment_id for d in row.deployments)
    click.echo(f"{verb} platform {row.issuer} (client id {row.client_id}); deployments: {deployments}")


def _deployments(reg) -> str:
    if reg.adopts_deployment:
        return "(none yet: the first launch's deployment is taken)"
    return ", ".join(sorted(reg.deployment_ids)) or "(none)"


@platform_cli.command("list")
def platform_list():
    """List every registration, from TOOL_CONFIG and from the database."""
    store = current_app.extensions["registrations"]
    registrations = store.all()
    if not registrations:
        click.echo("no platforms registered (use dynamic registration, `flask --app wsgi platform add …` "
                   "or TOOL_CONFIG)")
    for reg in registrations:
        state = "" if reg.active else "  DISABLED"
        click.echo(f"{reg.issuer}  client_id={reg.client_id}  deployments={_deployments(reg)}  "
                   f"source={reg.source}{state}")
        click.echo(f"    login={reg.auth_login_url}  token={reg.auth_token_url}  jwks={reg.key_set_url}")
    for row in store.shadowed():
        click.echo(
            f"warning: database registration {row.issuer} / {row.client_id} is shadowed by TOOL_CONFIG and not live"
        )


def _registration_options(command):
    command = click.option("--client-id", required=True, help="The client id the platform gave the tool.")(command)
    return click.option("--issuer", required=True, help="The platform's issuer (see `platform list`).")(command)


def _admin(action, *args):
    try:
        return action(current_app.extensions["registrations"], *args)
    except platform_admin.AdminError as exc:
        raise click.ClickException(str(exc)) from exc


def _usage(usage) -> str:
    return f"{usage.courses} course(s), {usage.rooms} room(s)"


@platform_cli.command("show")
@_registration_options
def platform_show(issuer, client_id):
    """Show one registration: its URLs, deployments, state and what uses it."""
    found = _admin(platform_admin.describe, issuer, client_id)
    reg = found.registration
    state = "active" if found.active else "DISABLED: launches from it are refused (`platform enable` turns it on)"
    source = "TOOL_CONFIG" if reg.source == "file" else "database (`platform add` or dynamic registration)"
    lines = [("issuer", reg.issuer), ("client id", reg.client_id), ("source", source), ("state", state),
             ("login URL", reg.auth_login_url), ("token URL", reg.auth_token_url), ("key set URL", reg.key_set_url)]
    if reg.auth_audience:
        lines.append(("token audience", reg.auth_audience))
    deployments = _deployments(reg)
    if found.row is not None and reg.source == "database":
        inactive = [d.deployment_id for d in found.row.deployments if not d.active]
        deployments += f"; inactive: {', '.join(inactive)}" if inactive else ""
        lines.append(("registered", found.row.created_at.isoformat(timespec="seconds")))
    lines += [("deployments", deployments), ("used by", _usage(found.usage)), ("video", _video_settings(reg))]
    for label, value in lines:
        click.echo(f"{label + ':':<16}{value}")
    if found.shadowed:
        click.echo("warning: the database also has this registration; TOOL_CONFIG's is the live one")


def _video_settings(registration) -> str:
    from .lti.platform_settings import settings_for, shown_value

    own = settings_for(registration.issuer, registration.client_id)
    if not own:
        return "the environment's settings"
    shown = ", ".join(f"{name}={shown_value(name, own[name])}" for name in sorted(own))
    return f"{shown} (the environment's for the rest; `platform set|unset` changes them)"


@platform_cli.command("disable")
@_registration_options
def platform_disable(issuer, client_id):
    """Refuse launches from a registration, keeping its courses, rooms and attendance."""
    row, changed = _admin(platform_admin.set_active, issuer, client_id, False)
    used = platform_admin.usage(issuer, client_id)
    verb = "disabled" if changed else "was already disabled:"
    click.echo(f"{verb} {row.issuer} (client id {row.client_id}): launches from it are refused; "
               f"its {_usage(used)} are kept (`platform enable` turns it back on)")


@platform_cli.command("enable")
@_registration_options
def platform_enable(issuer, client_id):
    """Accept launches from a disabled registration again."""
    row, changed = _admin(platform_admin.set_active, issuer, client_id, True)
    verb = "enabled" if changed else "was already enabled:"
    click.echo(f"{verb} {row.issuer} (client id {row.client_id}): launches from it are accepted")
    if current_app.extensions["registrations"].in_file(issuer, client_id):
        click.echo("warning: TOOL_CONFIG has the same registration; the file's is the live one")


@platform_cli.command("delete")
@_registration_options
@click.option("--force", is_flag=True, help="Delete even when rooms use it: their courses, rooms, class "
                                            "sessions, attendance and grades go too.")
def platform_delete(issuer, client_id, force):
    """Delete a registration (refused while rooms use it, unless --force)."""
    deleted = _admin(platform_admin.delete_registration, issuer, client_id, force)
    removed = f"{deleted.deployments} deployment(s)"
    if deleted.courses:
        removed += (f", {deleted.courses} course(s) and {deleted.rooms} room(s) with {deleted.class_sessions} "
                    "class session(s), their attendance, provider events, queued grades, enrolments and rosters")
    click.echo(f"deleted registration {issuer} (client id {client_id}): {removed}")


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
        ("Dynamic registration URL", base_url + "/lti/register"),
        ("Tool URL", base_url + "/lti/launch"),
        ("Initiate login URL", base_url + "/lti/login"),
        ("Redirection URI(s)", base_url + "/lti/launch"),
        ("Public keyset URL", base_url + "/.well-known/jwks.json"),
    ]


def quick_start_lines(base_url: str) -> list[str]:
    """What `serve` prints for the LMS administrator (the README's Quick start shows it too)."""
    return [
        "Live-class LTI tool. For the LMS administrator: paste the dynamic registration URL into the LMS",
        "(Moodle: Site administration > Plugins > Activity modules > External tool > Manage tools, the",
        '"Tool URL" box, then "Add LTI Advantage"; Canvas and Brightspace: see the README),',
        "or configure the tool manually with the other values:",
        *(f"  {label:<26} {value}" for label, value in registration_values(base_url)),
    ]


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
def serve(host, port):
    """Run the tool on this machine (embedded default), printing what an LMS admin needs."""
    base = current_app.config["TOOL_BASE_URL"]
    for line in quick_start_lines(base):
        click.echo(line)
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
@click.option("--batch-size", type=click.IntRange(min=1, max=10_000), default=500, show_default=True,
              help="Events applied per transaction (each person's intervals rebuilt once per batch).")
def webhooks_replay(include_failed, batch_size):
    """Apply stored events again: those for meetings that were unknown, and failed ones."""
    from .attendance.service import replay

    statuses = ("pending", "unknown_meeting", "failed") if include_failed else ("pending", "unknown_meeting")
    counts = replay(statuses, batch=batch_size)
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
