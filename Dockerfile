# capplan: `capplan serve` by default; the CronJob runs `capplan collect` from the same image.
#   docker build -t capplan:0.1.0 .
#   docker run --rm -p 8080:8080 -v capplan-data:/data capplan:0.1.0
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY capplan ./capplan
COPY queries ./queries
# A wheel of capplan (queries/ packed inside it) and of every dependency.
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CAPPLAN_DB=/data/capplan.duckdb
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels capplan \
    && rm -rf /wheels \
    && useradd --uid 10001 --no-create-home --home-dir /data capplan \
    && mkdir -p /data && chown 10001:10001 /data
USER 10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
# Exec form: capplan is PID 1 and gets SIGTERM itself (graceful shutdown, exit 0).
ENTRYPOINT ["capplan"]
CMD ["serve", "--host=0.0.0.0", "--port=8080", "--max-staleness=0"]
