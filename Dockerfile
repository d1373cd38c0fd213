# unlatch, three ways:
#   docker build --target unlatch .   a FROM-scratch image holding only /unlatch, for
#                                     COPY --from=<that image> /unlatch /usr/local/bin/unlatch
#   docker build .                    Ghost (ghost:5-alpine) with unlatch in front of it
# The binary is linked statically (glibc, crt-static): no interpreter, no
# shared libraries, so it runs in FROM scratch, in Alpine's busybox userland
# and in Debian alike. This is the build the container tests run
# (tests/containers.rs); the musl target cannot be built where they run.

FROM rust:1-bookworm AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
# SQLite's compile options (LIBSQLITE3_FLAGS).
COPY .cargo ./.cargo
COPY src ./src
# A static, non-PIE executable: no interpreter and no dynamic section. The
# target is named so that crt-static applies to unlatch only, not to
# build scripts and proc macros; the caches keep crates and objects between
# builds on one machine.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    target="$(rustc -vV | sed -n 's/^host: //p')" \
    && RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" \
       cargo build --release --locked --bin unlatch --target "$target" \
    && cp "target/$target/release/unlatch" /unlatch

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
