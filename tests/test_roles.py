"""Role mapping: exact parsing of LIS role URIs and short names into moderator / attendee."""
import pytest

from lti_tool.lti.roles import ATTENDEE, MODERATOR, parse_role, room_role

LIS = "http://purl.imsglobal.org/vocab/lis/v2/"


@pytest.mark.parametrize(
    "roles, expected",
    [
        ([LIS + "membership#Instructor"], MODERATOR),
        (["Instructor"], MODERATOR),
        ([LIS + "membership#Administrator"], MODERATOR),
        ([LIS + "membership#ContentDeveloper"], MODERATOR),
        ([LIS + "membership#TeachingAssistant"], MODERATOR),
        ([LIS + "membership/Instructor#TeachingAssistant"], MODERATOR),
        ([LIS + "membership/Instructor#TeachingAssistantSection"], MODERATOR),
        ([LIS + "membership/Instructor#Lecturer"], MODERATOR),
        (["TeachingAssistant"], MODERATOR),
        (["ContentDeveloper"], MODERATOR),
        ([LIS + "institution/person#Administrator"], MODERATOR),
        ([LIS + "system/person#Administrator"], MODERATOR),
        ([LIS + "system/person#SysAdmin"], MODERATOR),
        (
            [LIS + "membership#Learner", LIS + "institution/person#Administrator", LIS + "system/person#Administrator"],
            MODERATOR,
        ),
        (["urn:lti:role:ims/lis/Instructor"], MODERATOR),
        (["urn:lti:role:ims/lis/TeachingAssistant"], MODERATOR),
        (["urn:lti:instrole:ims/lis/Administrator"], MODERATOR),
        (["urn:lti:sysrole:ims/lis/SysAdmin"], MODERATOR),
        ([LIS + "institution/person#Instructor"], MODERATOR),
        ([LIS + "membership#Learner"], ATTENDEE),
        (["Learner"], ATTENDEE),
        ([LIS + "membership#Mentor"], ATTENDEE),
        ([LIS + "membership/Learner#Learner"], ATTENDEE),
        ([LIS + "membership#Learner", LIS + "institution/person#Instructor"], ATTENDEE),
        ([LIS + "institution/person#Student"], ATTENDEE),
        ([], ATTENDEE),
        (["http://example.com/roles#Instructor"], ATTENDEE),
        ([LIS + "membership#InstructorX"], ATTENDEE),
        ([LIS + "membership#learner"], ATTENDEE),
        (["Instructor-ish"], ATTENDEE),
        ([LIS + "membership#Learner#Instructor"], ATTENDEE),
        (["urn:lti:role:ims/lis/Learner"], ATTENDEE),
    ],
)
def test_room_role(roles, expected):
    assert room_role(roles) == expected


def test_roles_are_compared_exactly_not_by_substring():
    assert room_role(["http://evil.example/membership#Instructor-not"]) == ATTENDEE
    assert room_role([LIS + "membership#NotAnInstructor"]) == ATTENDEE


def test_parse_role_scopes():
    assert parse_role(LIS + "membership/Instructor#TeachingAssistant").scope == "context"
    assert parse_role(LIS + "membership/Instructor#TeachingAssistant").sub_role == "TeachingAssistant"
    assert parse_role(LIS + "institution/person#Faculty").scope == "institution"
    assert parse_role("urn:lti:sysrole:ims/lis/Administrator").scope == "system"
    assert parse_role("http://example.com/x").scope == "unknown"


def test_moodle_admin_launch_is_moderator(platform):
    assert room_role(platform.user("admin").roles) == MODERATOR


def test_moodle_student_launch_is_attendee(platform):
    assert room_role(platform.user("student").roles) == ATTENDEE
