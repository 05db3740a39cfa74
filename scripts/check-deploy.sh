#!/usr/bin/env bash
# Checks the deployment files in deploy/ without deploying anything:
#   systemd   systemd-analyze verify (unit syntax, directives, the ExecStart binary) and an offline
#             systemd-analyze security score; pgvigil --check on the example config.yaml
#   kubernetes  the manifests parse (when python3 has the yaml module); pgvigil --check on the
#             ConfigMap's config.yaml
#   prometheus  promtool check rules, promtool test rules
#   grafana   the dashboard is JSON, has a pool variable, and every PromQL query parses (promtool)
#   docker    every library the binary links directly comes from a package the runtime stage
#             installs (the image itself cannot be built without a Docker engine)
# Runs every check, prints each failure, exits non-zero if any failed. Needs a built binary:
# build/daemon/pgvigil (scripts/build.sh), or PGVIGIL_BINARY=/path/to/pgvigil. No root needed.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
repo=$PWD
source scripts/lib/paths.sh
bin=$PGVIGIL_BINARY
bin=$(readlink -f "$bin" 2>/dev/null || echo "$bin")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

failures=0
ok() { echo "check-deploy: ok: $*"; }
fail() {
  echo "check-deploy: FAILED: $*" >&2
  failures=$((failures + 1))
}
need() {
  if ! command -v "$1" >/dev/null 2>&1; then
    fail "$1 not found (install: $2)"
    return 1
  fi
}

have_bin=1
if [[ ! -x $bin ]]; then
  fail "no pgvigil binary at $bin (run scripts/build.sh or set PGVIGIL_BINARY)"
  have_bin=0
fi

# pgvigil_check <name> <config file> <password_file path in it>: `pgvigil --check` with the
# password file (which only exists on a deployed host) pointed at a temporary one.
pgvigil_check() {
  local name=$1 config=$2 secret_path=$3
  [[ $have_bin -eq 1 ]] || return 0
  local dir="$work/$name"
  mkdir -p "$dir"
  printf 'example-password\n' >"$dir/password"
  sed "s#$secret_path#$dir/password#" "$config" >"$dir/config.yaml"
  if ! grep -q "$dir/password" "$dir/config.yaml"; then
    fail "$name: $secret_path not found in $config"
  elif output=$("$bin" --config "$dir/config.yaml" --check 2>&1); then
    ok "$name: pgvigil --check"
  else
    fail "$name: pgvigil --check: $output"
  fi
}

# ---- systemd ------------------------------------------------------------------------------------
# `systemd-analyze verify` insists that ExecStart's binary exists. Rather than install into
# /usr/local/bin, verify a copy of the unit (same file name) whose Exec lines point at the built
# binary; everything else is checked as shipped.
unit=deploy/systemd/pgvigil.service
if need systemd-analyze "apt-get install systemd" && [[ $have_bin -eq 1 ]]; then
  mkdir -p "$work/systemd"
  sed "s#/usr/local/bin/pgvigil#$bin#g" "$unit" >"$work/systemd/pgvigil.service"
  output=$(systemd-analyze verify --man=no "$work/systemd/pgvigil.service" 2>&1)
  status=$?
  # Warnings about the unit (unknown keys, bad values) do not change the exit status; they name
  # the file, "pgvigil.service:<line>".
  if [[ $status -ne 0 ]] || grep -q 'pgvigil\.service' <<<"$output"; then
    fail "systemd-analyze verify $unit (exit $status): $output"
  else
    ok "systemd-analyze verify $unit"
  fi
  # The hardening must stay: overall exposure at most 2.0 of 10 ("OK"); 1.0 as shipped.
  if output=$(systemd-analyze security --offline=true --threshold=20 --no-pager \
    "$work/systemd/pgvigil.service" 2>&1); then
    ok "systemd-analyze security: $(grep -o 'Overall exposure level.*' <<<"$output")"
  else
    fail "systemd-analyze security $unit above 2.0: $(grep -v '^✓' <<<"$output")"
  fi
fi
pgvigil_check systemd-config deploy/systemd/config.yaml /run/credentials/pgvigil.service/db-password

# ---- kubernetes ---------------------------------------------------------------------------------
manifest=deploy/kubernetes/pgvigil-sidecar.yaml
if python3 -c 'import yaml' 2>/dev/null; then
  if output=$(python3 - "$manifest" 2>&1 <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
kinds = sorted(d["kind"] for d in docs)
assert kinds == ["ConfigMap", "Deployment", "Secret"], kinds
deployment = next(d for d in docs if d["kind"] == "Deployment")
spec = deployment["spec"]["template"]["spec"]
sidecar = next(c for c in spec["initContainers"] if c["name"] == "pgvigil")
assert sidecar["restartPolicy"] == "Always"
for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz"), ("startupProbe", "/healthz")):
    assert sidecar[probe]["httpGet"]["path"] == path, probe
assert sidecar["securityContext"]["readOnlyRootFilesystem"] is True
assert spec["securityContext"]["runAsNonRoot"] is True
assert deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
config_map = next(d for d in docs if d["kind"] == "ConfigMap")
yaml.safe_load(config_map["data"]["config.yaml"])
PY
  ); then
    ok "$manifest parses (yaml)"
  else
    fail "$manifest: $output"
  fi
else
  echo "check-deploy: note: python3 has no yaml module; $manifest only checked by pgvigil --check"
fi
# The ConfigMap's config.yaml: the literal block under "config.yaml: |", indented 4 spaces.
awk '/^  config\.yaml: \|/ {inside = 1; next}
     inside && /^    / {print substr($0, 5); next}
     inside && /^[[:space:]]*$/ {print ""; next}
     inside {exit}' "$manifest" >"$work/k8s-config.yaml"
if [[ -s $work/k8s-config.yaml ]]; then
  pgvigil_check kubernetes-config "$work/k8s-config.yaml" /var/run/secrets/pgvigil/password
else
  fail "$manifest: no config.yaml block in the ConfigMap"
fi

# ---- prometheus ---------------------------------------------------------------------------------
if need promtool "apt-get install prometheus"; then
  if output=$(promtool check rules deploy/prometheus/pgvigil-alerts.yaml 2>&1); then
    ok "promtool check rules: $(grep -o 'SUCCESS.*' <<<"$output")"
  else
    fail "promtool check rules: $output"
  fi
  # rule_files in the test file are relative to the test file.
  if output=$(promtool test rules deploy/prometheus/pgvigil-alerts.test.yaml 2>&1); then
    ok "promtool test rules"
  else
    fail "promtool test rules: $output"
  fi
fi

# ---- grafana ------------------------------------------------------------------------------------
dashboard=deploy/grafana/pgvigil-dashboard.json
if output=$(python3 -m json.tool "$dashboard" 2>&1 >/dev/null); then
  ok "$dashboard is JSON"
  # Every query as a recording rule, Grafana's variables replaced, so promtool parses the PromQL.
  if output=$(python3 - "$dashboard" "$work/dashboard-rules.yaml" 2>&1 <<'PY'
import json, sys
dashboard = json.load(open(sys.argv[1]))
names = [v["name"] for v in dashboard["templating"]["list"]]
assert "pool" in names, "no pool template variable"
exprs = []
def walk(panels):
    for panel in panels:
        walk(panel.get("panels", []))
        exprs.extend(t["expr"] for t in panel.get("targets", []) if t.get("expr"))
walk(dashboard["panels"])
exprs.extend(a["expr"] for a in dashboard["annotations"]["list"] if a.get("expr"))
ids = [p["id"] for p in dashboard["panels"]]
assert len(ids) == len(set(ids)), "duplicate panel ids"
with open(sys.argv[2], "w") as out:
    out.write("groups:\n  - name: dashboard\n    rules:\n")
    for i, expr in enumerate(exprs):
        expr = (expr.replace("$__rate_interval", "5m").replace("$instance", ".*")
                .replace("$pool", ".*"))
        out.write(f"      - record: dashboard_query_{i}\n        expr: {json.dumps(expr)}\n")
print(len(exprs))
PY
  ); then
    count=$output
    if command -v promtool >/dev/null 2>&1; then
      if output=$(promtool check rules "$work/dashboard-rules.yaml" 2>&1); then
        ok "$dashboard: $count queries parse"
      else
        fail "$dashboard: a query does not parse: $output"
      fi
    fi
  else
    fail "$dashboard: $output"
  fi
else
  fail "$dashboard is not JSON: $output"
fi

# ---- docker -------------------------------------------------------------------------------------
# Packages of the libraries the binary needs directly (DT_NEEDED) must be installed by the
# runtime stage, or come with debian:12-slim (libc6, libgcc-s1, libstdc++6).
dockerfile=deploy/docker/Dockerfile
if [[ $have_bin -eq 1 ]] && need readelf "apt-get install binutils" && need dpkg-query "a Debian system"; then
  # shellcheck disable=SC1003  # the backslashes are the Dockerfile's line continuations
  runtime_packages=" libc6 libgcc-s1 libstdc++6 $(awk '/^FROM debian:12-slim/ {slim = 1}
      slim && /apt-get install/ {grab = 1}
      grab {print; if (!/\\$/) grab = 0}' "$dockerfile" | tr -s ' \\' '  ') "
  missing=()
  while read -r soname; do
    path=$(ldd "$bin" | awk -v so="$soname" '$1 == so {print $3}')
    # dpkg knows each file under the path its package ships it at: /lib/... or /usr/lib/...
    # (merged /usr makes both work on disk), and by its real name or its soname link.
    package=
    for candidate in "$path" "$(readlink -f "$path")"; do
      for variant in "$candidate" "${candidate#/usr}" "/usr$candidate"; do
        package=$(dpkg -S "$variant" 2>/dev/null | head -n1 | cut -d: -f1)
        [[ -n $package ]] && break 2
      done
    done
    if [[ -z $package ]]; then
      missing+=("$soname(no package)")
    elif [[ $runtime_packages != *" $package "* ]]; then
      missing+=("$soname($package)")
    fi
  done < <(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
  if [[ ${#missing[@]} -eq 0 ]]; then
    ok "$dockerfile runtime stage installs every linked library's package"
  else
    fail "$dockerfile runtime stage lacks: ${missing[*]}"
  fi
fi

if [[ $failures -ne 0 ]]; then
  echo "check-deploy: $failures check(s) FAILED" >&2
  exit 1
fi
echo "check-deploy: all checks passed"
