#!/usr/bin/env bash
# Builds @sessiongate/client and copies it, with socket.io-client's browser
# ESM bundle, into web/static/vendor/, which the Go binary embeds. The
# output is committed, so `go install` and `go run` need no Node: run this
# (`make web`) after changing client/ and commit the result; `make web-check`
# (in CI) fails when the committed files differ from a fresh build. Run from
# anywhere.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
client="$root/client"
vendor="$root/web/static/vendor"

bash "$root/scripts/npm-deps.sh" client
rm -rf "$client/dist"
npm run --silent --prefix "$client" build

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
