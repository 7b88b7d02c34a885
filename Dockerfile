FROM python:3.11-slim

WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# The dependencies first, from pyproject.toml alone: a change to the code reuses this layer.
COPY pyproject.toml README.md ./
RUN python -c "import subprocess, sys, tomllib; \
deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; \
subprocess.check_call([sys.executable, '-m', 'pip', 'install', '--no-cache-dir', *deps])"
# Then the code, and its commands: csv-import (the terminal client), csv-import-keys,
# csv-import-dlq, csv-import-setup.
COPY alembic.ini ./
COPY server ./server
RUN pip install --no-cache-dir --no-deps . && useradd --create-home app \
    && mkdir -p /data/uploads /data/state /data/metrics /data/rabbitmq \
    && chown app /data/uploads /data/state /data/metrics /data/rabbitmq
USER app
EXPOSE 8000
CMD ["python", "-m", "server.run", "api"]
