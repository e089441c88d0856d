# Bytewax 0.21.1 wheels need glibc >= 2.31 and Python <= 3.12: slim Debian bookworm, Python 3.12.
FROM python:3.12-slim-bookworm
WORKDIR /app
COPY pyproject.toml setup.py README.md ./
COPY cryptoflow ./cryptoflow
COPY connectors ./connectors
COPY operators ./operators
COPY dataflows ./dataflows
COPY configs ./configs
# gcc only while installing: it compiles the order-book side (operators/book/_levels.c) and the Binance
# depth decoder (connectors/binance/_depth.c); without them the slower pure-Python paths are used. The
# flows run from /app, whose source tree shadows site-packages, so the built modules are copied next to
# their sources and the imports are checked from here.
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && pip install --no-cache-dir . \
    && platlib="$(python -c 'import sysconfig; print(sysconfig.get_paths()["platlib"])')" \
    && cp "$platlib"/operators/book/_levels*.so operators/book/ \
    && cp "$platlib"/connectors/binance/_depth*.so connectors/binance/ \
    && python -c "import operators.book._levels, connectors.binance._depth" \
    && apt-get purge -y gcc libc6-dev && apt-get autoremove -y && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 10001 cryptoflow
USER 10001
ENV PYTHONUNBUFFERED=1
CMD ["python", "-m", "bytewax.run", "dataflows.spot_delta:flow"]
