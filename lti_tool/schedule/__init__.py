"""A room's timetable: occasions (one-off or weekly series), when students may enter, and which
occasion each run of the meeting belongs to.

- `timetable.py` holds the rules as plain functions over plain values (no database): weekly
  repeats in a time zone, the early-entry window, matching runs to occasions.
- `service.py` reads and writes occasions: the first schedule from a link's custom parameters,
  the teacher's add / move / cancel, and the notices the reminders package e-mails.
"""
