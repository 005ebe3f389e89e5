#!/usr/bin/env bash
# Builds @sessiongate/client and copies it, with socket.io-client's browser
# ESM bundle, into web/static/vendor/, which the Go binary embeds. Run it
# before `go build` (make build / make demo do); run from anywhere.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
client="$root/client"
vendor="$root/web/static/vendor"

(
  cd "$client"
  npm ci --no-audit --no-fund --loglevel=error
  npm run --silent build
)

rm -rf "$vendor"
mkdir -p "$vendor/sessiongate-client"
# The browser needs the modules and their source maps, not the declarations.
(cd "$client/dist" && find . -name '*.js' -o -name '*.js.map') | while read -r f; do
  mkdir -p "$vendor/sessiongate-client/$(dirname "$f")"
  cp "$client/dist/$f" "$vendor/sessiongate-client/$f"
done

sio="$client/node_modules/socket.io-client/dist"
cp "$sio/socket.io.esm.min.js" "$vendor/socket.io-client.esm.min.js"
# The bundle names its map by its original file name.
if [ -f "$sio/socket.io.esm.min.js.map" ]; then
  cp "$sio/socket.io.esm.min.js.map" "$vendor/socket.io.esm.min.js.map"
fi

echo "web/build.sh: vendor files in ${vendor#"$root"/}"
