#!/usr/bin/env bash
# Local backing services without Docker: redis-server (Debian package) and Azurite (npm, blob only),
# on 127.0.0.1, with their data under a state folder. Idempotent: start twice and the second does nothing.
#
#   infra/local/services.sh start    # install if missing, start, print the connection settings
#   infra/local/services.sh stop     # stop what start started
#   infra/local/services.sh status
#   infra/local/services.sh env      # print the settings as environment variables (eval-able)
#   infra/local/services.sh install  # only install redis-server, Azurite and chromium (tests/run.sh uses this; chromium is
#                                    # for the dashboard's browser tests, driven by Playwright)
#
# Settings: SI_STATE_DIR (default <repo>/.state/local), REDIS_PORT (6379), AZURITE_BLOB_PORT (10000),
# REDIS_APPENDFSYNC (everysec: a crash may lose the last second of writes; always: none, at a cost in accept throughput,
# see docs/architecture.md and the bench's redis-fsync scenario).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
state="${SI_STATE_DIR:-$root/.state/local}"
redis_port="${REDIS_PORT:-6379}"
blob_port="${AZURITE_BLOB_PORT:-10000}"
redis_appendfsync="${REDIS_APPENDFSYNC:-everysec}"
case "$redis_appendfsync" in
  everysec|always) ;;
  *) echo "REDIS_APPENDFSYNC is '$redis_appendfsync'; use everysec or always" >&2; exit 2 ;;
esac
azurite_version="3.37.0"
tools="$root/.state/tools"
mkdir -p "$state/redis" "$state/azurite" "$tools"

ensure_redis() {
  command -v redis-server >/dev/null 2>&1 && return
  echo "installing redis-server (Debian package)..." >&2
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  else
    sudo apt-get update -qq >/dev/null && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  fi
}

# Debian's chromium for the dashboard's browser tests (Playwright drives it; its own browser download does not work offline).
ensure_chromium() {
  command -v chromium >/dev/null 2>&1 && return
  echo "installing chromium (Debian package)..." >&2
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    sudo apt-get update -qq >/dev/null && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
}

ensure_azurite() {
  [ -x "$tools/node_modules/.bin/azurite-blob" ] && return
  echo "installing azurite@$azurite_version (npm)..." >&2
  npm install --prefix "$tools" --no-audit --no-fund --silent "azurite@$azurite_version" >/dev/null
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_port() {
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on 127.0.0.1:$1" >&2
  return 1
}

print_env() {
  cat <<EOT
export Inference__Redis__ConnectionString="127.0.0.1:$redis_port"
export Inference__ModelStore__Blob__ConnectionString="DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:$blob_port/devstoreaccount1;"
EOT
}

start() {
  ensure_redis
  ensure_azurite
  if ! alive "$state/redis.pid"; then
    # Append-only file on, so a restart keeps the queue; noeviction, so a full Redis refuses writes (503) instead of
    # dropping a job's record.
    redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$state/redis" --appendonly yes \
      --appendfsync "$redis_appendfsync" --maxmemory-policy noeviction --save "" --daemonize yes --pidfile "$state/redis.pid" --logfile "$state/redis.log"
  fi
  if ! alive "$state/azurite.pid"; then
    nohup "$tools/node_modules/.bin/azurite-blob" --blobHost 127.0.0.1 --blobPort "$blob_port" \
      --location "$state/azurite" --skipApiVersionCheck --loose >"$state/azurite.log" 2>&1 &
    echo $! >"$state/azurite.pid"
  fi
  wait_port "$redis_port"
  wait_port "$blob_port"
  echo "redis-server on 127.0.0.1:$redis_port, Azurite blob on 127.0.0.1:$blob_port (state in $state)" >&2
  print_env
}

stop() {
  for name in azurite redis; do
    if alive "$state/$name.pid"; then
      kill "$(cat "$state/$name.pid")" && echo "stopped $name" >&2
    fi
    rm -f "$state/$name.pid"
  done
}

status() {
  for name in redis azurite; do
    if alive "$state/$name.pid"; then echo "$name: running (pid $(cat "$state/$name.pid"))"; else echo "$name: stopped"; fi
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  env) print_env ;;
  install) ensure_redis; ensure_azurite; ensure_chromium ;;
  *) echo "usage: $0 start|stop|status|env|install" >&2; exit 2 ;;
esac
