# The one image every compose service runs (workers, beat, flower, API); see docs/operations.md.
FROM python:3.11-slim

# EXTRAS=ops installs flower, otel the OpenTelemetry SDK (traces stay off until OTEL_* variables are set);
# add ",local" for the offline embedding model when there is no OPENAI_API_KEY (ONNX Runtime and the
# exported model in models/minilm-onnx, no torch; docs/embeddings.md).
ARG EXTRAS=ops,otel
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CHRONICLE_DATA_DIR=/app/data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY pipeline ./pipeline
COPY workers ./workers
COPY db ./db
COPY samples ./samples
COPY models ./models
RUN case ",${EXTRAS}," in *,local,*) MODEL=./models/minilm-onnx ;; *) MODEL= ;; esac \
    && pip install ".[${EXTRAS}]" $MODEL \
    && useradd --create-home --uid 10001 chronicle \
    && mkdir -p /app/data && chown chronicle /app/data
USER chronicle
VOLUME ["/app/data"]
EXPOSE 8000 5555
CMD ["chronicle", "--help"]
