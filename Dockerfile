# Bytewax 0.21.1 wheels need glibc >= 2.31 and Python <= 3.12: slim Debian bookworm, Python 3.12.
FROM python:3.12-slim-bookworm
WORKDIR /app
COPY pyproject.toml README.md ./
COPY cryptoflow ./cryptoflow
COPY connectors ./connectors
COPY operators ./operators
COPY dataflows ./dataflows
COPY configs ./configs
RUN pip install --no-cache-dir . && useradd --uid 10001 cryptoflow
USER 10001
ENV PYTHONUNBUFFERED=1
CMD ["python", "-m", "bytewax.run", "dataflows.spot_delta:flow"]
