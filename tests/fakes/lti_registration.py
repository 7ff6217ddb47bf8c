"""The platform's side of LTI Dynamic Registration 1.0, for the fake platform (lti_platform.py):
the URLs each product serves, its OpenID configuration, the registration token it hands the
tool, and its registration endpoint — checking what the real one checks and answering in its
shape.

    params = platform.start_registration()        # what the platform adds to the tool's URL
    requests.get(tool_url + "/lti/register", params=params)
    platform.activate(client_id)                  # the administrator enables the new tool

Three products, chosen with `FakePlatform(product=...)`:

* "moodle" (Moodle 4.5, mod/lti/openid-registration.php and
  classes/local/ltiopenid/registration_helper.php): the token is an RS256 JWT signed with the
  platform's key (`sub` = the client id to create, `scope` "reg", one hour; `scope`
  "reg-update" with `sub` = the tool type id when the administrator chose "update the existing
  tool"). It is single use: a token whose client id exists already is refused with 401
  "token_already_used". Required: response_types with id_token, initiate_login_uri,
  redirect_uris (a list), client_name, jwks_uri, token_endpoint_auth_method private_key_jwt,
  the tool configuration with a domain matching target_link_uri's; application_type, when
  sent, "web". Refusals are plain text with Moodle's messages; the answer is
  config_to_registration's (tests/fixtures/moodle/dynamic_registration_post.json): the new
  tool type id as deployment_id, the scopes granted, only the deep-linking message echoed.
* "canvas" (lib/schemas/lti/ims/oidc_registration.rb, lti_tool_configuration.rb,
  app/models/lti/ims/registration.rb): the token is Canvas's own HS256 JWT (uuid,
  initiated_at, user_id, root_account_global_id, exp: exactly those claims), one hour, used
  once. Missing or malformed required fields, a message type or placement Canvas does not
  know, a domain with a scheme, a privacy level outside its list and an unknown scope are
  answered 422 with `{"errors": …}`; unknown properties are dropped, as Canvas's filter does.
  The answer carries a client id (a Canvas global id) and no deployment id: Canvas creates the
  deployment when the administrator enables the tool (`activate`).
* "brightspace": no registration token at all. The fake binds the registration to a one-time
  key in the OpenID configuration's and registration endpoint's paths (how Brightspace binds
  it is not documented), and refuses a request carrying an Authorization header — a tool that
  sends "Bearer None" when it was given no token. The answer carries a deployment id when the
  administrator ticked "Configure Deployment" (`start_registration(configure_deployment=...)`).
  Its token endpoint wants the OpenID configuration's `authorization_server` as the client
  assertion's audience.
"""
from __future__ import annotations

import json
import re
import secrets
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import jwt
from flask import Response, request

TOOL_CONFIGURATION = "https://purl.imsglobal.org/spec/lti-tool-configuration"
PLATFORM_CONFIGURATION = "https://purl.imsglobal.org/spec/lti-platform-configuration"
RESOURCE_LINK_REQUEST = "LtiResourceLinkRequest"
DEEP_LINKING_REQUEST = "LtiDeepLinkingRequest"
REGISTRATION_TOKEN_SECONDS = 3600
ALPHANUMERIC = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

_AGS = "https://purl.imsglobal.org/spec/lti-ags/scope/"
SCOPE_SCORE, SCOPE_RESULT = _AGS + "score", _AGS + "result.readonly"
SCOPE_LINEITEM_RO, SCOPE_LINEITEM = _AGS + "lineitem.readonly", _AGS + "lineitem"
SCOPE_NRPS = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
SCOPE_TOOL_SETTING = "https://purl.imsglobal.org/spec/lti-ts/scope/toolsetting"

# Where each product serves what the tool talks to (the views behind them are the same).
PATHS = {
    "moodle": {"auth": "/mod/lti/auth.php", "token": "/mod/lti/token.php", "jwks": "/mod/lti/certs.php",
               "configuration": "/mod/lti/openid-configuration.php",
               "registration": "/mod/lti/openid-registration.php"},
    "canvas": {"auth": "/api/lti/authorize_redirect", "token": "/login/oauth2/token",
               "jwks": "/api/lti/security/jwks", "configuration": "/api/lti/security/openid-configuration",
               "registration": "/api/lti/registrations"},
    "brightspace": {"auth": "/d2l/lti/authenticate", "token": "/core/connect/token", "jwks": "/d2l/.well-known/jwks",
                    "configuration": "/d2l/api/lti/dynamicregistration/<key>/openid-configuration",
                    "registration": "/d2l/api/lti/dynamicregistration/<key>"},
}

# Canvas (app/models/lti/resource_placement.rb, PLACEMENTS_BY_MESSAGE_TYPE).
CANVAS_PLACEMENTS = {
    RESOURCE_LINK_REQUEST: [
        "account_navigation", "assignment_edit", "assignment_group_menu", "assignment_index_menu",
        "assignment_menu", "assignment_selection", "assignment_view", "collaboration", "conference_selection",
        "course_assignments_menu", "course_home_sub_navigation", "course_navigation",
        "course_settings_sub_navigation", "discussion_topic_index_menu", "discussion_topic_menu",
        "file_index_menu", "file_menu", "global_navigation", "homework_submission", "link_selection",
        "migration_selection", "module_group_menu", "module_index_menu", "module_index_menu_modal",
        "module_menu_modal", "module_menu", "post_grades", "quiz_index_menu", "quiz_menu",
        "resource_selection", "similarity_detection", "student_context_card", "submission_type_selection",
        "tool_configuration", "user_navigation", "wiki_index_menu", "wiki_page_menu",
    ],
    DEEP_LINKING_REQUEST: [
        "assignment_selection", "collaboration", "conference_selection", "course_assignments_menu",
        "editor_button", "homework_submission", "link_selection", "migration_selection",
        "module_index_menu_modal", "module_menu_modal", "resource_selection", "submission_type_selection",
    ],
}
CANVAS_ALL_PLACEMENTS = sorted({p for ps in CANVAS_PLACEMENTS.values() for p in ps} | {"ContentArea", "RichTextEditor"})
CANVAS_SCOPES = [SCOPE_LINEITEM, SCOPE_LINEITEM_RO, SCOPE_RESULT, SCOPE_SCORE, SCOPE_NRPS,
                 "https://canvas.instructure.com/lti/public_jwk/scope/update",
                 "https://canvas.instructure.com/lti/account_lookup/scope/show",
                 "https://canvas.instructure.com/lti-ags/progress/scope/show"]
CANVAS_PRIVACY_LEVELS = ("public", "name_only", "email_only", "anonymous")
CANVAS_TOKEN_CLAIMS = {"uuid", "initiated_at", "user_id", "root_account_global_id", "exp"}
CANVAS_EXTENSION = "https://canvas.instructure.com/lti/"
# The domain pattern of Canvas's schema: a host name or address, an optional port, no scheme.
CANVAS_DOMAIN = re.compile(r"^(([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])\.)*"
                           r"([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])(:[0-9]{1,5})?$")
CANVAS_TOOL_PROPERTIES = {"domain", "messages", "claims", "secondary_domains", "deployment_id", "target_link_uri",
                          "custom_parameters", "description", CANVAS_EXTENSION + "privacy_level",
                          CANVAS_EXTENSION + "tool_id"}


@dataclass
class RegisteredTool:
    """A tool the platform holds after a dynamic registration (Moodle: a tool type, pending)."""

    client_id: str
    deployment_id: str | None
    request: dict  # what the tool sent
    scopes: list[str]
    state: str = "pending"

    @property
    def configuration(self) -> dict:
        return self.request[TOOL_CONFIGURATION]


class RegistrationRefused(Exception):
    def __init__(self, status: int, body, content_type: str = "text/plain; charset=utf-8"):
        super().__init__(f"{status} {body}")
        self.status, self.body, self.content_type = status, body, content_type

    def response(self) -> Response:
        body = self.body if isinstance(self.body, str) else json.dumps(self.body)
        return Response(body, self.status, content_type=self.content_type)


def _canvas_refusal(errors: dict) -> RegistrationRefused:
    return RegistrationRefused(422, {"errors": errors}, "application/json; charset=utf-8")


def _is_uri(value) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _domain_of(url: str) -> str:
    """Moodle's lti_get_domain_from_url: the host (and port), without a leading www."""
    netloc = urlsplit(url if "://" in url else "https://" + url).netloc.lower()
    return netloc[4:] if netloc.startswith("www.") else netloc


@dataclass
class RegistrationDesk:
    """The registration side of one FakePlatform."""

    platform: object
    tools: dict[str, RegisteredTool] = field(default_factory=dict)  # by client id
    used_tokens: set[str] = field(default_factory=set)
    open_keys: set[str] = field(default_factory=set)  # Brightspace's one-time keys
    configure_deployment: dict[str, bool] = field(default_factory=dict)
    canvas_secret: str = field(default_factory=lambda: secrets.token_hex(32))
    requests: list[dict] = field(default_factory=list)  # every registration request, as received
    next_type_id: int = 2  # Moodle's seeded tool type is 1
    next_global_id: int = 10000000000001
    # The next registration request is answered with this (status, body, content type) instead.
    answer_next: tuple[int, str | bytes, str] | None = None

    @property
    def product(self) -> str:
        return self.platform.product

    # ------------------------------------------------------------ what the platform hands out
    def start(self, update_of: str | None = None, exp_in: int = REGISTRATION_TOKEN_SECONDS,
              configure_deployment: bool = True, client_id: str | None = None) -> dict:
        """The parameters the platform adds to the tool's registration URL (Moodle: `client_id`
        chooses the client id the token promises, `update_of` a tool type to update)."""
        if self.product == "brightspace":
            key = secrets.token_hex(8)
            self.open_keys.add(key)
            self.configure_deployment[key] = configure_deployment
            return {"openid_configuration": self.configuration_url(key)}
        token = (self.moodle_token(update_of, exp_in, client_id) if self.product == "moodle"
                 else self.canvas_token(exp_in))
        return {"openid_configuration": self.configuration_url(), "registration_token": token}

    def moodle_token(self, update_of: str | None = None, exp_in: int = REGISTRATION_TOKEN_SECONDS,
                     client_id: str | None = None) -> str:
        """Moodle's: `sub` is the client id the new tool will get (15 random characters), or the
        tool type id to update; scope "reg" or "reg-update"; an hour; RS256 with its key."""
        now = int(time.time())
        sub = update_of or client_id or "".join(secrets.choice(ALPHANUMERIC) for _ in range(15))
        claims = {"sub": sub, "scope": "reg-update" if update_of else "reg", "iat": now, "exp": now + exp_in}
        return self.platform.sign_jwt(claims)

    def canvas_token(self, exp_in: int = REGISTRATION_TOKEN_SECONDS) -> str:
        claims = {"uuid": str(uuid.uuid4()), "initiated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  "user_id": 1, "root_account_global_id": 10000000000001, "exp": int(time.time()) + exp_in}
        return jwt.encode(claims, self.canvas_secret, algorithm="HS256")

    def configuration_url(self, key: str | None = None) -> str:
        return self.platform.issuer + PATHS[self.product]["configuration"].replace("<key>", key or "")

    def registration_endpoint(self, key: str | None = None) -> str:
        return self.platform.issuer + PATHS[self.product]["registration"].replace("<key>", key or "")

    # ------------------------------------------------------------ the OpenID configuration
    def configuration(self, key: str | None = None) -> dict:
        platform = self.platform
        base = platform.moodle_openid_configuration()
        base.update(jwks_uri=platform.key_set_url, token_endpoint=platform.auth_token_url,
                    authorization_endpoint=platform.auth_login_url,
                    registration_endpoint=self.registration_endpoint(key))
        if self.product == "canvas":
            base.update(scopes_supported=list(CANVAS_SCOPES), subject_types_supported=["public"],
                        authorization_server=urlsplit(platform.issuer).hostname)
            base[PLATFORM_CONFIGURATION] = {
                "product_family_code": "canvas", "version": "vCloud",
                "messages_supported": [{"type": t, "placements": list(p)} for t, p in CANVAS_PLACEMENTS.items()],
                "variables": ["ResourceLink.id", "Context.id", "Canvas.course.id"],
                "https://canvas.instructure.com/lti/account_name": "Test University",
            }
        elif self.product == "brightspace":
            base.update(authorization_server=platform.token_audience)
            base[PLATFORM_CONFIGURATION] = {
                "product_family_code": "desire2learn", "version": "20.25.10",
                "messages_supported": [{"type": RESOURCE_LINK_REQUEST}, {"type": DEEP_LINKING_REQUEST}],
            }
        return base

    def configuration_endpoint(self, key: str | None = None):
        if self.product == "brightspace" and key not in self.open_keys:
            return Response("Not Found", 404)
        return Response(json.dumps(self.configuration(key)), content_type="application/json; charset=utf-8")

    # ------------------------------------------------------------ the registration endpoint
    def endpoint(self, key: str | None = None):
        body = request.get_data(as_text=True)
        self.requests.append({"headers": dict(request.headers), "body": body})
        if self.answer_next is not None:
            (status, answer, content_type), self.answer_next = self.answer_next, None
            return Response(answer, status, content_type=content_type)
        try:
            if self.product == "moodle":
                return self._json(self._moodle(body), 200)
            if self.product == "canvas":
                return self._json(self._canvas(body), 200)
            return self._json(self._brightspace(body, key), 201)
        except RegistrationRefused as refusal:
            return refusal.response()

    @staticmethod
    def _json(body: dict, status: int) -> Response:
        return Response(json.dumps(body), status, content_type="application/json; charset=utf-8")

    @staticmethod
    def _bearer() -> str | None:
        header = request.headers.get("Authorization", "")
        return header[len("Bearer "):].strip() if header.startswith("Bearer ") else None

    @staticmethod
    def _payload(body: str) -> dict:
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            raise RegistrationRefused(400, "missing required attribute response_types")
        return payload

    # --- Moodle ----------------------------------------------------------------------------------
    def _moodle(self, body: str) -> dict:
        token = self._bearer()
        if not token:
            raise RegistrationRefused(401, "missing_registration_token")
        claims = self._moodle_claims(token)
        tool = None
        if claims.get("scope") == "reg":
            if claims["sub"] in self.tools:
                raise RegistrationRefused(401, "token_already_used")
        elif claims.get("scope") == "reg-update":
            tool = next((t for t in self.tools.values() if t.deployment_id == str(claims["sub"])), None)
            if tool is None:
                raise RegistrationRefused(400, "Unknown client")
        else:
            raise RegistrationRefused(403, "Incorrect scope")
        payload = self._payload(body)
        scopes = self._moodle_check(payload)
        if tool is None:
            tool = RegisteredTool(claims["sub"], str(self.next_type_id), payload, scopes)
            self.next_type_id += 1
        tool.request, tool.scopes = payload, scopes
        self.tools[tool.client_id] = tool
        return self._moodle_answer(tool)

    def _moodle_claims(self, token: str) -> dict:
        try:
            header = jwt.get_unverified_header(token)
            key = self.platform.key(header.get("kid"))
            return jwt.decode(token, key.public_key, algorithms=["RS256"], options={"require": ["exp", "sub"]})
        except StopIteration as error:
            raise RegistrationRefused(401, "No key found for the registration token") from error
        except jwt.ExpiredSignatureError as error:
            raise RegistrationRefused(401, "Expired token") from error
        except jwt.PyJWTError as error:
            raise RegistrationRefused(401, f"Invalid registration token: {error}") from error

    @staticmethod
    def _moodle_check(payload: dict) -> list[str]:
        """registration_to_config's checks, in its order; returns the scopes Moodle grants."""
        for name in ("response_types", "initiate_login_uri", "redirect_uris", "client_name", "jwks_uri",
                     "token_endpoint_auth_method", TOOL_CONFIGURATION):
            if not payload.get(name):
                raise RegistrationRefused(400, f"missing required attribute {name}")
        tool = payload[TOOL_CONFIGURATION]
        if not isinstance(tool, dict) or not tool.get("domain"):
            raise RegistrationRefused(400, "missing_domain")
        target = tool.get("target_link_uri") or "https://" + tool["domain"]
        if _domain_of(tool["domain"]) != _domain_of(target):
            raise RegistrationRefused(400, "domain_targetlinkuri_mismatch")
        if "id_token" not in payload["response_types"]:
            raise RegistrationRefused(400, "invalid_response_types")
        if not isinstance(payload["redirect_uris"], list):
            raise RegistrationRefused(400, "invalid_redirect_uris")
        if payload["token_endpoint_auth_method"] != "private_key_jwt":
            raise RegistrationRefused(400, "invalid_token_endpoint_auth_method")
        if payload.get("application_type") and payload["application_type"] != "web":
            raise RegistrationRefused(400, "invalid_application_type")
        asked = str(payload.get("scope") or "").split(" ")
        sync = 2 if SCOPE_LINEITEM in asked else 1 if {SCOPE_SCORE, SCOPE_RESULT, SCOPE_LINEITEM_RO} & set(asked) else 0
        granted = [SCOPE_SCORE, SCOPE_RESULT, SCOPE_LINEITEM_RO] if sync else []
        granted += [SCOPE_LINEITEM] if sync == 2 else []
        granted += [SCOPE_NRPS] if SCOPE_NRPS in asked else []
        return granted + ([SCOPE_TOOL_SETTING] if SCOPE_TOOL_SETTING in asked else [])

    @staticmethod
    def _moodle_answer(tool: RegisteredTool) -> dict:
        """config_to_registration (dynamic_registration_post.json "response")."""
        sent, config = tool.request, tool.configuration
        answer_config = {"version": "1.3.0", "deployment_id": tool.deployment_id,
                         "target_link_uri": config.get("target_link_uri") or "https://" + config["domain"],
                         "domain": config["domain"], "description": config.get("description") or ""}
        deep_linking = [m for m in config.get("messages") or [] if m.get("type") == DEEP_LINKING_REQUEST]
        if deep_linking:
            message = {"type": DEEP_LINKING_REQUEST}
            if deep_linking[-1].get("target_link_uri"):
                message["target_link_uri"] = deep_linking[-1]["target_link_uri"]
            answer_config["messages"] = [message]
        claims = ["sub", "iss"]
        if {"name", "given_name", "family_name"} & set(config.get("claims") or []):
            claims += ["name", "family_name", "given_name"]
        if "email" in (config.get("claims") or []):
            claims.append("email")
        answer_config["claims"] = claims
        return {
            "client_id": tool.client_id, "response_types": ["id_token"], "jwks_uri": sent["jwks_uri"],
            "initiate_login_uri": sent["initiate_login_uri"], "grant_types": ["client_credentials", "implicit"],
            "redirect_uris": list(sent["redirect_uris"]), "application_type": "web",
            "token_endpoint_auth_method": "private_key_jwt", "client_name": sent["client_name"],
            "logo_uri": sent.get("logo_uri") or "", "scope": " ".join(tool.scopes),
            TOOL_CONFIGURATION: answer_config,
        }

    # --- Canvas ----------------------------------------------------------------------------------
    def _canvas(self, body: str) -> dict:
        claims = self._canvas_claims(self._bearer())
        payload = self._payload(body)
        errors = self._canvas_errors(payload)
        if errors:
            raise _canvas_refusal(errors)
        self.used_tokens.add(claims["uuid"])
        client_id = str(self.next_global_id)
        self.next_global_id += 1
        config = {k: v for k, v in payload[TOOL_CONFIGURATION].items() if k in CANVAS_TOOL_PROPERTIES}
        payload = {**payload, TOOL_CONFIGURATION: config}
        scopes = str(payload.get("scope") or "").split()
        self.tools[client_id] = RegisteredTool(client_id, None, payload, scopes)
        return {
            "client_id": client_id, "application_type": payload["application_type"],
            "grant_types": payload["grant_types"], "initiate_login_uri": payload["initiate_login_uri"],
            "redirect_uris": payload["redirect_uris"], "response_types": payload["response_types"],
            "client_name": payload["client_name"], "jwks_uri": payload["jwks_uri"],
            "logo_uri": payload.get("logo_uri"), "token_endpoint_auth_method": payload["token_endpoint_auth_method"],
            "scope": " ".join(scopes),
            TOOL_CONFIGURATION: {**config, CANVAS_EXTENSION + "registration_config_url":
                                 f"{self.platform.issuer}/api/lti/registrations/{client_id}/view"},
        }

    def _canvas_claims(self, token: str | None) -> dict:
        if not token:
            raise RegistrationRefused(401, {"errorMessage": "Missing registration token"},
                                      "application/json; charset=utf-8")
        try:
            claims = jwt.decode(token, self.canvas_secret, algorithms=["HS256"])
        except jwt.PyJWTError as error:
            raise RegistrationRefused(401, {"errorMessage": f"Invalid token: {error}"},
                                      "application/json; charset=utf-8") from error
        if set(claims) != CANVAS_TOKEN_CLAIMS:
            raise RegistrationRefused(401, {"errorMessage": "JWT did not include expected contents"},
                                      "application/json; charset=utf-8")
        if claims["uuid"] in self.used_tokens:
            raise _canvas_refusal({"guid": ["has already been taken"]})
        return claims

    @staticmethod
    def _canvas_errors(payload: dict) -> dict:
        """Lti::IMS::Registration's validations and the tool configuration's JSON schema."""
        errors = {}
        checks = {
            "application_type": payload.get("application_type") == "web",
            "grant_types": isinstance(payload.get("grant_types"), list)
            and {"client_credentials", "implicit"} <= set(payload["grant_types"]),
            "response_types": isinstance(payload.get("response_types"), list)
            and "id_token" in payload["response_types"],
            "redirect_uris": isinstance(payload.get("redirect_uris"), list) and bool(payload["redirect_uris"])
            and all(_is_uri(u) for u in payload["redirect_uris"]),
            "initiate_login_uri": _is_uri(payload.get("initiate_login_uri")),
            "client_name": isinstance(payload.get("client_name"), str) and bool(payload["client_name"]),
            "jwks_uri": _is_uri(payload.get("jwks_uri")),
            "token_endpoint_auth_method": payload.get("token_endpoint_auth_method") == "private_key_jwt",
            "logo_uri": payload.get("logo_uri") in (None, "") or _is_uri(payload["logo_uri"]),
        }
        errors.update({name: ["is invalid or missing"] for name, ok in checks.items() if not ok})
        invalid = [s for s in str(payload.get("scope") or "").split() if s not in CANVAS_SCOPES]
        if invalid:
            errors["scopes"] = [f"Invalid scopes: {', '.join(invalid)}"]
        tool = payload.get(TOOL_CONFIGURATION)
        problems = RegistrationDesk._canvas_tool_problems(tool) if isinstance(tool, dict) else ["is missing"]
        if problems:
            errors["lti_tool_configuration"] = problems
        return errors

    @staticmethod
    def _canvas_tool_problems(tool: dict) -> list[str]:
        problems = [f"required property {name} is missing" for name in ("domain", "messages", "claims")
                    if name not in tool]
        if "domain" in tool and not (isinstance(tool["domain"], str) and CANVAS_DOMAIN.match(tool["domain"])):
            problems.append(f"domain {tool['domain']!r} does not match the pattern (no scheme)")
        claims = tool.get("claims")
        if "claims" in tool and not (isinstance(claims, list) and all(isinstance(c, str) for c in claims)):
            problems.append("claims must be a list of strings")
        level = tool.get(CANVAS_EXTENSION + "privacy_level")
        if level is not None and level not in CANVAS_PRIVACY_LEVELS:
            problems.append(f"privacy_level {level!r} is not one of {CANVAS_PRIVACY_LEVELS}")
        for message in tool.get("messages") if isinstance(tool.get("messages"), list) else []:
            problems += RegistrationDesk._canvas_message_problems(message)
        return problems

    @staticmethod
    def _canvas_message_problems(message) -> list[str]:
        if not isinstance(message, dict) or message.get("type") not in CANVAS_PLACEMENTS:
            return [f"message type {message.get('type') if isinstance(message, dict) else message!r} is not one of "
                    f"{sorted(CANVAS_PLACEMENTS)}"]
        problems = [f"placement {p!r} is not a Canvas placement" for p in message.get("placements") or []
                    if p not in CANVAS_ALL_PLACEMENTS]
        if message.get("target_link_uri") is not None and not _is_uri(message["target_link_uri"]):
            problems.append("message target_link_uri is not a URI")
        return problems

    # --- Brightspace -----------------------------------------------------------------------------
    def _brightspace(self, body: str, key: str | None) -> dict:
        if "Authorization" in request.headers:
            raise RegistrationRefused(401, "unexpected Authorization header: this registration has no token")
        if key not in self.open_keys:
            raise RegistrationRefused(404, "Not Found: this registration was used or never started")
        payload = self._payload(body)
        tool = payload.get(TOOL_CONFIGURATION)
        for name in ("client_name", "initiate_login_uri", "redirect_uris", "jwks_uri"):
            if not payload.get(name):
                raise RegistrationRefused(400, f"{name} is required")
        if not isinstance(tool, dict) or not tool.get("domain") or not tool.get("target_link_uri"):
            raise RegistrationRefused(400, "the tool configuration needs a domain and a target_link_uri")
        self.open_keys.discard(key)
        client_id = str(uuid.uuid4())
        deployment = str(uuid.uuid4()) if self.configure_deployment.pop(key, True) else None
        scopes = str(payload.get("scope") or "").split()
        self.tools[client_id] = RegisteredTool(client_id, deployment, payload, scopes)
        answer_config = {**tool, **({"deployment_id": deployment} if deployment else {})}
        return {**{k: v for k, v in payload.items() if k != TOOL_CONFIGURATION}, "client_id": client_id,
                TOOL_CONFIGURATION: answer_config}
