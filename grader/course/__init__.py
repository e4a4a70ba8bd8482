"""The instructor's tools: release, student kit, known-bug submissions, feedback, reports, the
demo class and the ``dlgrader`` command line. They may use the engine and the student library."""
