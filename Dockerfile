# Roster in a small image. The build uses the committed offline query data (.sqlx), so
# it needs no database; the runtime image is Debian slim with the binary, the email
# templates and curl (for the health check), run as an unprivileged user.
#   docker build -t roster .
#   docker run --env-file .env -p 8080:8080 roster
FROM rust:1.95-bookworm AS build
WORKDIR /src
ENV SQLX_OFFLINE=true
COPY . .
RUN cargo build --release --locked --bin roster

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --create-home --home-dir /app roster
COPY --from=build /src/target/release/roster /usr/local/bin/roster
COPY templates /app/templates
COPY roster.example.toml /app/roster.example.toml
WORKDIR /app
USER roster
# Listen on every interface inside the container; publish the port to choose who sees it.
ENV ROSTER_ADDR=0.0.0.0:8080
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8080/readyz || exit 1
ENTRYPOINT ["roster"]
CMD ["serve"]
