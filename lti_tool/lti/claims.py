"""Names of the LTI 1.3 claims the tool reads, and a typed view of a validated launch."""
from __future__ import annotations

from dataclasses import dataclass

LTI = "https://purl.imsglobal.org/spec/lti/claim/"
MESSAGE_TYPE = LTI + "message_type"
VERSION = LTI + "version"
DEPLOYMENT_ID = LTI + "deployment_id"
TARGET_LINK_URI = LTI + "target_link_uri"
ROLES = LTI + "roles"
CONTEXT = LTI + "context"
RESOURCE_LINK = LTI + "resource_link"
LAUNCH_PRESENTATION = LTI + "launch_presentation"
CUSTOM = LTI + "custom"
AGS_ENDPOINT = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
NRPS = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"
DEEP_LINKING_SETTINGS = "https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings"

RESOURCE_LINK_REQUEST = "LtiResourceLinkRequest"
DEEP_LINKING_REQUEST = "LtiDeepLinkingRequest"
KNOWN_MESSAGE_TYPES = {RESOURCE_LINK_REQUEST, DEEP_LINKING_REQUEST}


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class LaunchClaims:
    """The parts of a verified id_token the tool uses, with defaults for absent claims."""

    raw: dict

    @property
    def issuer(self) -> str:
        return self.raw["iss"]

    @property
    def sub(self) -> str:
        return str(self.raw.get("sub") or "")

    @property
    def message_type(self) -> str:
        return self.raw.get(MESSAGE_TYPE, "")

    @property
    def deployment_id(self) -> str:
        return str(self.raw.get(DEPLOYMENT_ID) or "")

    @property
    def roles(self) -> list[str]:
        roles = self.raw.get(ROLES)
        return [r for r in roles if isinstance(r, str)] if isinstance(roles, list) else []

    @property
    def context(self) -> dict:
        return _dict(self.raw.get(CONTEXT))

    @property
    def resource_link(self) -> dict:
        return _dict(self.raw.get(RESOURCE_LINK))

    @property
    def custom(self) -> dict:
        return _dict(self.raw.get(CUSTOM))

    @property
    def return_url(self) -> str:
        return _dict(self.raw.get(LAUNCH_PRESENTATION)).get("return_url") or ""

    @property
    def document_target(self) -> str:
        return _dict(self.raw.get(LAUNCH_PRESENTATION)).get("document_target") or ""

    @property
    def ags(self) -> dict:
        return _dict(self.raw.get(AGS_ENDPOINT))

    @property
    def memberships_url(self) -> str:
        return _dict(self.raw.get(NRPS)).get("context_memberships_url") or ""
