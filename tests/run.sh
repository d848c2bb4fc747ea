#!/usr/bin/env bash
# Runs every test of the solution on a fresh machine and ends with "N passed, N failed".
# It installs what the tests need (redis-server from Debian, Azurite from npm into .state/tools);
# the test fixtures start their own redis-server and Azurite on free loopback ports and stop them,
# even on failure. Under CI=true a service that cannot start fails the run; it never skips.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

results="$(mktemp -d "${TMPDIR:-/tmp}/si-test-results.XXXXXX")"
cleanup() { rm -rf "$results"; }
trap cleanup EXIT

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

# Install the local services (idempotent; the same installer infra/local/services.sh uses).
infra/local/services.sh install || { echo "could not install redis-server / Azurite"; echo "0 passed, 1 failed"; exit 1; }

dotnet build ServerlessInference.sln -c Release --nologo -v quiet
build=$?
if [ $build -ne 0 ]; then
  echo "build failed"
  echo "0 passed, 1 failed"
  exit 1
fi

dotnet test ServerlessInference.sln -c Release --no-build --nologo \
  --logger "trx" --results-directory "$results" --blame-hang-timeout 5m "$@"
status=$?

passed=0; failed=0
for trx in "$results"/*.trx; do
  [ -e "$trx" ] || continue
  counters=$(grep -o '<Counters [^>]*>' "$trx" | head -n 1)
  p=$(sed -n 's/.* passed="\([0-9]*\)".*/\1/p' <<<"$counters")
  f=$(sed -n 's/.* failed="\([0-9]*\)".*/\1/p' <<<"$counters")
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
done
if [ $status -ne 0 ] && [ $failed -eq 0 ]; then
  # dotnet test failed without a failed test (a crashed test host, a missing results file): count it.
  failed=1
fi
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
