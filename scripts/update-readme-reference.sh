#!/usr/bin/env bash
# Copies docs/config-reference.md (generated from daemon/config_keys.cpp) into README.md between
# the CONFIG REFERENCE markers. With --check, only reports whether README.md is current.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
begin='<!-- BEGIN CONFIG REFERENCE'
end='<!-- END CONFIG REFERENCE -->'
updated=$(awk -v begin="$begin" -v end="$end" -v table=docs/config-reference.md '
  index($0, begin) == 1 { print; while ((getline line < table) > 0) print line; skipping = 1; next }
  index($0, end) == 1 { skipping = 0 }
  !skipping { print }' README.md)
if [[ ${1:-} == --check ]]; then
  if [[ "$updated" != "$(cat README.md)" ]]; then
    echo "README.md: the configuration table differs from docs/config-reference.md; run scripts/update-readme-reference.sh" >&2
    exit 1
  fi
  echo "README.md: configuration table is current"
  exit 0
fi
printf '%s\n' "$updated" > README.md
