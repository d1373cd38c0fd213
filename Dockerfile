# unlatch, three ways:
#   docker build --target unlatch .   a FROM-scratch image holding only /unlatch, for
#                                     COPY --from=<that image> /unlatch /usr/local/bin/unlatch
#   docker build .                    Ghost (ghost:5-alpine) with unlatch in front of it
# The binary is static (musl), so it runs in any image, Alpine or not.

FROM rust:1-alpine AS build
# hadolint ignore=DL3018
RUN apk add --no-cache musl-dev
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked --bin unlatch \
    && cp target/release/unlatch /unlatch

FROM scratch AS unlatch
COPY --from=build /unlatch /unlatch
ENTRYPOINT ["/unlatch"]

FROM ghost:5-alpine AS ghost
COPY --from=unlatch /unlatch /usr/local/bin/unlatch
COPY docker/ghost/unlatch-ghost /usr/local/bin/unlatch-ghost
# Migrate before Ghost boots, as node, from /var/lib/ghost (the WORKDIR), the
# way Ghost-CLI does: a fresh install initialises, an upgrade migrates.
ENV UNLATCH_MIGRATE_CMD="current/node_modules/.bin/knex-migrator-migrate --init --mgpath current" \
    UNLATCH_MIGRATE_RUN_AS=node \
    UNLATCH_KILL_GRACE=20s
ENTRYPOINT ["unlatch-ghost"]
CMD ["node", "current/index.js"]
