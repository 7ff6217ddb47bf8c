"""Attendance: provider events in (an inbox), class sessions and merged intervals out."""
