FROM python:3.11-slim

WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY pyproject.toml README.md ./
COPY server ./server
RUN pip install --no-cache-dir . && useradd --create-home app \
    && mkdir -p /data/uploads /data/state && chown app /data/uploads /data/state
USER app
EXPOSE 8000
CMD ["python", "-m", "server.run", "api"]
