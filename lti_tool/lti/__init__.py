"""LTI 1.3: OIDC login, id_token launch, the tool's JWKS, and role mapping."""
from flask import Blueprint

bp = Blueprint("lti", __name__)

from . import routes  # noqa: E402,F401  (registers the views on bp)
