# One image for every gatecheck role in docker-compose.yml: the API (the default
# command below), Celery workers, beat and Flower differ only in their command.
# One image means the API and the workers can never disagree on code or settings.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    GATECHECK_REQUIRE_ZIPFILE_OVERLAP_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GATECHECK_DATA_DIR=/var/lib/gatecheck

WORKDIR /app

# Parsers' native parts (pdfium, FFmpeg in PyAV, lxml) come inside their wheels: no apt packages.
# pyproject.toml brings the service (FastAPI, Celery, Redis, MinIO SDK); the image adds Flower, and
# Celery >= 5.7: there a hard time limit calls the task's on_failure (celery#10226), which is what
# records "timeout" for a check the hard limit killed; older versions would leave it "processing".
COPY pyproject.toml README.md ./
COPY gatecheck ./gatecheck
COPY extractors ./extractors
COPY validators ./validators
COPY service ./service
COPY worker ./worker
RUN pip install . "celery[redis]>=5.7" "flower>=2.0" \
    && python -c "import worker.tasks, service.app"

# Never run parsers of untrusted files as root (Celery also refuses to be happy about it).
RUN useradd --system --uid 10001 --home-dir /var/lib/gatecheck --create-home gatecheck \
    && mkdir -p /var/lib/gatecheck/spool && chown -R gatecheck:gatecheck /var/lib/gatecheck
USER gatecheck

EXPOSE 8000
CMD ["uvicorn", "--factory", "service.app:create_app_from_env", "--host", "0.0.0.0", "--port", "8000"]
