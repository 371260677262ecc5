# syntax=docker/dockerfile:1
# One image for every retain process (API, workers, beat, flower, autoscaler); docker-compose.yml
# picks the process with the command, which is appended to the `retain` entrypoint.

# Bookworm, not the floating 3.11-slim tag: Debian 13 (trixie) no longer ships OpenJDK 17.
FROM python:3.11-slim-bookworm

# PYTHONUNBUFFERED: log lines reach `docker compose logs` as they are written, not on exit.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# pyspark starts a JVM: Spark jobs run in the worker containers (train/maintenance queues).
# The man1 directory must exist or the JRE's postinst fails on slim images (its alternatives link
# a man page there).
RUN mkdir -p /usr/share/man/man1 \
 && apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src

# Dependencies first, from the metadata alone, so that editing code does not reinstall pyspark
# (hundreds of MB). __init__.py is enough for setuptools to read the version.
COPY pyproject.toml setup.cfg constraints.txt README.md ./
COPY retain/__init__.py retain/__init__.py
RUN pip install -c constraints.txt ".[monitoring,spark]"

# Then the code; --no-deps --force-reinstall replaces only retain itself.
COPY retain retain
RUN pip install --no-deps --force-reinstall .

# Never run as root. RETAIN_HOME is the only place retain writes (beat schedule, Spark scratch);
# creating it here gives a named volume mounted on it the right owner.
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/retain --shell /usr/sbin/nologin retain \
 && install -d -o retain -g retain /var/lib/retain
ENV RETAIN_HOME=/var/lib/retain
# Spark writes spark-warehouse/ and derby logs to the working directory: make it writable.
WORKDIR /var/lib/retain
USER retain

EXPOSE 8000 5555
ENTRYPOINT ["retain"]
CMD ["--help"]
