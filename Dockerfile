# feedback_ai: one image for the API and the Celery worker (CPU).
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
WORKDIR /app
# torch first, pinned to the CPU wheel index: a plain spec would pull the CUDA build.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml README.md ./
COPY feedback_ai ./feedback_ai
COPY api ./api
COPY workers ./workers
COPY models/registry.json ./models/registry.json
RUN pip install ".[ner,postgres]"
RUN useradd --create-home app && mkdir -p /data /app/models/artifacts && chown -R app /data /app/models
USER app
ENV FEEDBACK_AI_DATA_DIR=/data FEEDBACK_AI_MODELS_DIR=/app/models
EXPOSE 8000
CMD ["feedback-ai", "serve", "--host", "0.0.0.0", "--port", "8000"]
