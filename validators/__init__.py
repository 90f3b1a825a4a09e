"""gatecheck validators: gateway checks over the extracted document model.

This is gatecheck's own package, not the PyPI ``validators`` library (a test
asserts which one is imported). The checks arrive with the standards profiles.
"""
