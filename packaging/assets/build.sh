#!/usr/bin/env bash
# Install the pinned npm packages and copy what the console serves into app/static/vendor.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dest="$here/../../app/static/vendor"
cd "$here"
if [ ! -d node_modules/htmx.org ] || [ ! -d node_modules/echarts ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
mkdir -p "$dest"
cp node_modules/htmx.org/dist/htmx.min.js "$dest/htmx.min.js"
# Charts on the overview and tenant pages (the common build: line, bar, pie).
cp node_modules/echarts/dist/echarts.common.min.js "$dest/echarts.min.js"
