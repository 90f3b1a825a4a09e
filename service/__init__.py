"""gatecheck HTTP service (FastAPI): submissions in, reports out."""
