"""The grading engine."""
