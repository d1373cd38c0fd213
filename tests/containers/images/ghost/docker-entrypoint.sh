#!/bin/bash
# A stand-in for the official Ghost image's docker-entrypoint.sh
# (docker-library/ghost, 5.x and 6.x): as root it gives the content folder to
# node and re-runs itself as node (gosu); as node it seeds a fresh content
# folder from content.orig; then it execs the command. Same logic, line for
# line, so the image's ENTRYPOINT/CMD can be run on a host.
set -e

# allow the container to be started with `--user`
if [[ "$*" == node*current/index.js* ]] && [ "$(id -u)" = '0' ]; then
	find "$GHOST_CONTENT" \! -user node -exec chown node '{}' +
	exec gosu node "$BASH_SOURCE" "$@"
fi

if [[ "$*" == node*current/index.js* ]]; then
	baseDir="$GHOST_INSTALL/content.orig"
	for src in "$baseDir"/*/ "$baseDir"/themes/*; do
		src="${src%/}"
		target="$GHOST_CONTENT/${src#$baseDir/}"
		mkdir -p "$(dirname "$target")"
		if [ ! -e "$target" ]; then
			tar -cC "$(dirname "$src")" "$(basename "$src")" | tar -xC "$(dirname "$target")"
		fi
	done
fi

exec "$@"
