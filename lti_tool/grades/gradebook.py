"""What the platform lets the tool do with an activity's grades, as its launches said.

A launch's AGS claim names the activity's own line item (`lineitem`, when the activity is
graded in the platform), the course's line items service (`lineitems`) and the scopes the
platform grants (`scope`). A Moodle administrator may set the tool's Assignment and Grade
Services to "grade sync only": the score scope without the line-item one. The tool then grades
into the activity's own line item and never tries to make a column (the delivery would only
be refused), and asks for access tokens of the scopes granted only.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..lti.platform_services import SCOPE_LINEITEM, SCOPE_SCORE
from ..models import ResourceLink

ENABLE_COLUMNS = (
    "a Moodle administrator sets Site administration → Plugins → Activity modules → External tool → "
    "Manage tools → this tool → Services → IMS LTI Assignment and Grade Services to "
    "“Use this service for grade sync and column management”"
)


@dataclass(frozen=True)
class Gradebook:
    """One activity's gradebook access; `scopes` None: no launch said, the tool tries."""

    scopes: tuple[str, ...] | None
    own_column: str | None  # the launch's `lineitem`
    tool_column: str | None  # a line item the tool found or made earlier
    lineitems_url: str | None

    @classmethod
    def of(cls, link: ResourceLink) -> Gradebook:
        scopes = tuple(link.ags_scopes) if link.ags_scopes is not None else None
        return cls(scopes, link.lineitem_url, link.tool_lineitem_url, link.lineitems_url)

    def grants(self, scope: str) -> bool:
        return self.scopes is None or scope in self.scopes

    @property
    def offered(self) -> bool:
        """Whether the platform offers this activity a gradebook service at all."""
        return bool(self.own_column or self.tool_column or self.lineitems_url)

    @property
    def may_send(self) -> bool:
        return self.offered and self.grants(SCOPE_SCORE)

    @property
    def may_create_columns(self) -> bool:
        return bool(self.lineitems_url) and self.grants(SCOPE_LINEITEM)

    @property
    def sync_only(self) -> bool:
        """Moodle's "grade sync only": scores may be sent, columns not made."""
        return self.scopes is not None and SCOPE_SCORE in self.scopes and SCOPE_LINEITEM not in self.scopes

    @property
    def column(self) -> str | None:
        """Where grades go without making a column: the activity's own, else the tool's."""
        return self.own_column or self.tool_column

    def problem(self) -> str | None:
        """Why no grade can be delivered, in words for the teacher's page; None when they can."""
        if not self.offered:
            return "the platform offers no gradebook (Assignment and Grade Services) for this activity"
        if not self.grants(SCOPE_SCORE):
            return "the platform does not let the tool send grades (no score scope)"
        if self.column is None and not self.may_create_columns:
            return ("the activity has no grade item of its own and the platform lets the tool send grades only "
                    "(grade sync only), not create a grade column")
        return None
