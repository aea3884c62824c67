#!/usr/bin/env bash
# Lints openapi.yaml with a pinned Redocly CLI (config: redocly.yaml). Needs node and npx;
# npx fetches the pinned CLI from the npm registry the first time and then uses its cache.
set -euo pipefail
cd "$(dirname "$0")/.."
REDOCLY_CLI_VERSION=2.77.0
if ! command -v npx >/dev/null; then
  echo "lint_spec: npx not found: install Node.js (20 or later) to lint openapi.yaml" >&2
  exit 2
fi
# No telemetry or update checks: the only network use is fetching the pinned package.
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true
export NPM_CONFIG_UPDATE_NOTIFIER=false NPM_CONFIG_FUND=false NPM_CONFIG_AUDIT=false
exec npx --yes "@redocly/cli@${REDOCLY_CLI_VERSION}" lint --config redocly.yaml openapi.yaml "$@"
