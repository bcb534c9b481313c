FROM python:3.11-slim
WORKDIR /srv/scoregate
COPY pyproject.toml README.md ./
COPY app ./app
COPY connectors ./connectors
COPY policies ./policies
COPY emulators ./emulators
COPY migrations ./migrations
RUN pip install --no-cache-dir . && useradd --system scoregate && mkdir /data && chown scoregate /data
USER scoregate
ENV SCOREGATE_DATABASE_URL=sqlite:////data/scoregate.db
EXPOSE 8000
CMD ["scoregate", "serve", "--host", "0.0.0.0", "--port", "8000"]
