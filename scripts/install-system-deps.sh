#!/usr/bin/env bash
# Install the system packages the test suite uses: PostgreSQL 15 (a throwaway
# cluster is started by the tests) and Chromium (the web UI tests). Idempotent;
# skips what is already there. Needs root (CI and sessions run as root).
set -euo pipefail
need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v runuser >/dev/null 2>&1 || need+=(util-linux)
command -v wrk >/dev/null 2>&1 || need+=(wrk)  # load generator for make bench-serving
command -v java >/dev/null 2>&1 && [ -e /usr/share/java/postgresql.jar ] || need+=(openjdk-17-jre-headless libpostgresql-jdbc-java)  # --engine spark tests (JDBC)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)  # the Redis Streams tests
if [ ${#need[@]} -eq 0 ]; then
  echo "system packages: all present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
    echo "Missing system packages (${need[*]}); run this script as root." >&2; exit 1; fi
else SUDO=""; fi
echo "installing system packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Debian's postgresql package starts a cluster; the tests run their own.
if command -v pg_ctlcluster >/dev/null 2>&1; then
  for v in /etc/postgresql/*/main; do
    [ -d "$v" ] || continue
    ver=$(basename "$(dirname "$v")")
    $SUDO pg_ctlcluster "$ver" main stop >/dev/null 2>&1 || true
  done
fi
