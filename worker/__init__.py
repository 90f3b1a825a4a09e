"""gatecheck background workers (Celery): extraction and checks off the request path."""
