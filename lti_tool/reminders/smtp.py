"""The mail server: `SMTP_URL` read into `MailServer`, a connection to it, and the settings'
problems for `validate_config`.

    smtp://[user:password@]host[:port]           plain SMTP (port 25), never TLS
    smtp+starttls://[user:password@]host[:port]  STARTTLS required (port 587)
    smtps://[user:password@]host[:port]          TLS from the first byte (port 465)

User and password are percent-decoded (`p%40ss` is `p@ss`). Plain `smtp://` takes no
opportunistic STARTTLS: what it does is what it says, and a relay on the same machine with a
self-signed certificate keeps working. It carries a password only to a loopback host (a
password in clear over the network is refused at start). TLS certificates are verified with
the system's trust store. The password is never logged: `MailServer.shown` is the URL without it.
"""
from __future__ import annotations

import ipaddress
import smtplib
import ssl
from dataclasses import dataclass, field
from email.utils import parseaddr
from urllib.parse import unquote, urlsplit

PLAIN, STARTTLS, TLS = "smtp", "smtp+starttls", "smtps"
DEFAULT_PORTS = {PLAIN: 25, STARTTLS: 587, TLS: 465}
TIMEOUT_SECONDS = 20


class MailSettingError(ValueError):
    """SMTP_URL cannot be used; the message never repeats the password."""


@dataclass(frozen=True)
class MailServer:
    scheme: str
    host: str
    port: int
    user: str = ""
    password: str = field(default="", repr=False)

    @property
    def shown(self) -> str:
        """The URL as logs and pages may show it: no password."""
        user = f"{self.user}:…@" if self.user else ""
        return f"{self.scheme}://{user}{self.host}:{self.port}"

    def connect(self, timeout: float = TIMEOUT_SECONDS) -> smtplib.SMTP:
        """An open, authenticated connection (raises OSError or smtplib.SMTPException)."""
        context = ssl.create_default_context()
        if self.scheme == TLS:
            connection = smtplib.SMTP_SSL(self.host, self.port, timeout=timeout, context=context)
        else:
            connection = smtplib.SMTP(self.host, self.port, timeout=timeout)
        try:
            connection.ehlo_or_helo_if_needed()
            if self.scheme == STARTTLS:
                connection.starttls(context=context)  # SMTPNotSupportedError when not offered
                connection.ehlo()
            if self.user:
                connection.login(self.user, self.password)
        except BaseException:
            connection.close()
            raise
        return connection


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_smtp_url(url: str) -> MailServer:
    """SMTP_URL as a MailServer; MailSettingError (without the password) when unusable."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise MailSettingError("SMTP_URL must start with smtp://, smtp+starttls:// or smtps://")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        raise MailSettingError("SMTP_URL has a port that is not a number from 1 to 65535") from None
    if not host:
        raise MailSettingError("SMTP_URL names no mail server host (smtp://host:port)")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise MailSettingError("SMTP_URL takes no path or query: smtp://[user:password@]host[:port]")
    server = MailServer(scheme, host, port or DEFAULT_PORTS[scheme],
                        unquote(parts.username or ""), unquote(parts.password or ""))
    if server.password and scheme == PLAIN and not is_loopback(host):
        raise MailSettingError("SMTP_URL would send its password in clear over the network: use "
                               "smtp+starttls:// or smtps:// (plain smtp:// takes a password only to a loopback host)")
    return server


def mail_server(config) -> MailServer | None:
    """The configured server, or None when mail is off (SMTP_URL empty)."""
    url = (config.get("SMTP_URL") or "").strip()
    return parse_smtp_url(url) if url else None


def mail_problems(config) -> list[str]:
    problems = []
    try:
        mail_server(config)
    except MailSettingError as exc:
        problems.append(str(exc))
    name, address = parseaddr(config.get("MAIL_FROM") or "")
    if "@" not in address:
        problems.append("MAIL_FROM must be an e-mail address, e.g. Live class <noreply@school.example>")
    return problems
