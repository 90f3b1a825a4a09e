"""Fuzzing support shared by the Hypothesis tests and the atheris harness (catalogue test 40 (ii))."""
