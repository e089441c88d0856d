# Bytewax 0.21.1 wheels need glibc >= 2.31 and Python <= 3.12: slim Debian bookworm, Python 3.12.
FROM python:3.12-slim-bookworm
WORKDIR /app
COPY pyproject.toml setup.py README.md ./
COPY cryptoflow ./cryptoflow
COPY connectors ./connectors
COPY operators ./operators
COPY dataflows ./dataflows
COPY configs ./configs
# gcc only while installing: it compiles the order-book side (operators/book/_levels.c; without it the
# slower pure-Python side is used). The flows run from /app, whose source tree shadows site-packages, so
# the built module is copied next to its source and the import is checked from here.
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && pip install --no-cache-dir . \
    && cp "$(python -c 'import sysconfig; print(sysconfig.get_paths()["platlib"])')"/operators/book/_levels*.so operators/book/ \
    && python -c "import operators.book._levels" \
    && apt-get purge -y gcc libc6-dev && apt-get autoremove -y && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 10001 cryptoflow
USER 10001
ENV PYTHONUNBUFFERED=1
CMD ["python", "-m", "bytewax.run", "dataflows.spot_delta:flow"]
