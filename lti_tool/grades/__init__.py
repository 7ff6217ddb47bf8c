"""Grades: attendance turned into scores, and their delivery to the platform through AGS."""
