"""gatecheck: pre-checks apprenticeship EPA submissions before gateway."""

__version__ = "0.1.0"
