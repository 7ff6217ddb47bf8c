"""From LTI role URIs to the two roles a live class knows: moderator and attendee.

Roles are parsed into (scope, role, sub-role) and compared exactly, never by substring: a
role such as `…membership#Learner` must not match "Instructor" because of where it comes from.

The mapping (documented in docs/roles.md):
- context roles Instructor, Administrator, ContentDeveloper and TeachingAssistant, and every
  sub-role of them (`…membership/Instructor#TeachingAssistant`), make a moderator;
- institution and system Administrator (and SysAdmin) make a moderator: site administrators;
- institution Instructor/Faculty make a moderator only when the launch carries no context role
  at all: Canvas sends `institution/person#Instructor` for anyone who teaches anywhere, and such
  a person enrolled as a Learner in this course must join as an attendee;
- everything else (Learner, Mentor, unknown roles) makes an attendee.
"""
from __future__ import annotations

from dataclasses import dataclass

LIS = "http://purl.imsglobal.org/vocab/lis/v2/"
CONTEXT_PREFIX = LIS + "membership"
INSTITUTION_PREFIX = LIS + "institution/person#"
SYSTEM_PREFIXES = (LIS + "system/person#", "http://purl.imsglobal.org/vocab/lti/system/person#")
LEGACY_PREFIXES = {
    "urn:lti:role:ims/lis/": "context",
    "urn:lti:instrole:ims/lis/": "institution",
    "urn:lti:sysrole:ims/lis/": "system",
}

MODERATOR_CONTEXT_ROLES = {"Instructor", "Administrator", "ContentDeveloper", "TeachingAssistant"}
ADMIN_ROLES = {"Administrator", "SysAdmin"}
TEACHING_INSTITUTION_ROLES = {"Instructor", "Faculty"}

MODERATOR = "moderator"
ATTENDEE = "attendee"


@dataclass(frozen=True)
class ParsedRole:
    scope: str  # "context", "institution", "system" or "unknown"
    name: str
    sub_role: str | None = None


def _split_sub_role(path: str) -> tuple[str, str | None]:
    # "Instructor#TeachingAssistant" (LIS v2) or "Instructor/TeachingAssistant" (legacy URNs)
    for separator in ("#", "/"):
        if separator in path:
            name, sub = path.split(separator, 1)
            return name, sub
    return path, None


def parse_role(role: str) -> ParsedRole:
    role = (role or "").strip()
    if role.startswith(CONTEXT_PREFIX + "#"):
        return ParsedRole("context", role[len(CONTEXT_PREFIX) + 1 :])
    if role.startswith(CONTEXT_PREFIX + "/"):
        name, sub = _split_sub_role(role[len(CONTEXT_PREFIX) + 1 :])
        return ParsedRole("context", name, sub)
    if role.startswith(INSTITUTION_PREFIX):
        return ParsedRole("institution", role[len(INSTITUTION_PREFIX) :])
    for prefix in SYSTEM_PREFIXES:
        if role.startswith(prefix):
            return ParsedRole("system", role[len(prefix) :])
    for prefix, scope in LEGACY_PREFIXES.items():
        if role.startswith(prefix):
            name, sub = _split_sub_role(role[len(prefix) :])
            return ParsedRole(scope, name, sub)
    if role and ":" not in role and "/" not in role and "#" not in role:
        # LTI 1.3 allows the simple names of context roles ("Instructor").
        return ParsedRole("context", role)
    return ParsedRole("unknown", role)


def _is_moderator_context_role(parsed: ParsedRole) -> bool:
    if parsed.name in MODERATOR_CONTEXT_ROLES:
        return True
    # Sub-roles named TeachingAssistant* (TeachingAssistantSection, …) under any principal.
    return bool(parsed.sub_role and parsed.sub_role.startswith("TeachingAssistant"))


def room_role(lti_roles: list[str]) -> str:
    """MODERATOR or ATTENDEE for the roles of one launch."""
    parsed = [parse_role(r) for r in lti_roles if isinstance(r, str)]
    context_roles = [p for p in parsed if p.scope == "context"]
    if any(_is_moderator_context_role(p) for p in context_roles):
        return MODERATOR
    if any(p.scope in ("institution", "system") and p.name in ADMIN_ROLES for p in parsed):
        return MODERATOR
    if not context_roles and any(
        p.scope == "institution" and p.name in TEACHING_INSTITUTION_ROLES for p in parsed
    ):
        return MODERATOR
    return ATTENDEE


def is_site_administrator(lti_roles: list[str]) -> bool:
    """An institution or system Administrator (SysAdmin): the platform's administrators, who may
    open the tool's administration pages for their platform. A course's Administrator (a context
    role) administers that course only, so it does not count."""
    parsed = [parse_role(r) for r in lti_roles if isinstance(r, str)]
    return any(p.scope in ("institution", "system") and p.name in ADMIN_ROLES for p in parsed)
