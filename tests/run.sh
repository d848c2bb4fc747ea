#!/usr/bin/env bash
# Runs every test of the solution on a fresh machine and ends with "N passed, N failed, N skipped"; the line before
# it gives each skip reason with its count (a skipped suite says why it did not run).
# It installs what the tests need (redis-server and chromium from Debian, Azurite from npm into .state/tools);
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
infra/local/services.sh install || { echo "could not install redis-server / Azurite / chromium"; echo "0 passed, 1 failed, 0 skipped"; exit 1; }

dotnet build ServerlessInference.sln -c Release --nologo -v quiet
build=$?
if [ $build -ne 0 ]; then
  echo "build failed"
  echo "0 passed, 1 failed, 0 skipped"
  exit 1
fi

dotnet test ServerlessInference.sln -c Release --no-build --nologo \
  --logger "trx" --results-directory "$results" --blame-hang-timeout 5m "$@"
status=$?

passed=0; failed=0; skipped=0
for trx in "$results"/*.trx; do
  [ -e "$trx" ] || continue
  counters=$(grep -o '<Counters [^>]*>' "$trx" | head -n 1)
  t=$(sed -n 's/.* total="\([0-9]*\)".*/\1/p' <<<"$counters")
  e=$(sed -n 's/.* executed="\([0-9]*\)".*/\1/p' <<<"$counters")
  p=$(sed -n 's/.* passed="\([0-9]*\)".*/\1/p' <<<"$counters")
  f=$(sed -n 's/.* failed="\([0-9]*\)".*/\1/p' <<<"$counters")
  # A skipped test is counted in total but not in executed (VSTest leaves notExecuted at 0 for xunit skips).
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0})); skipped=$((skipped + ${t:-0} - ${e:-0}))
done
# Why tests were skipped: the first line of each skipped result's message, with how many share it.
for trx in "$results"/*.trx; do
  [ -e "$trx" ] || continue
  awk '/<UnitTestResult / { skip = ($0 ~ /outcome="NotExecuted"/) }
       skip && /<Message>/ { line = $0; sub(/.*<Message>/, "", line); sub(/<\/Message>.*/, "", line); print line; skip = 0 }' "$trx"
done | sed -e "s/&apos;/'/g" -e 's/&quot;/"/g' -e 's/&lt;/</g' -e 's/&gt;/>/g' -e 's/&amp;/\&/g' \
  | sort | uniq -c | sed 's/^ *\([0-9]*\) /skipped \1: /'
if [ $status -ne 0 ] && [ $failed -eq 0 ]; then
  # dotnet test failed without a failed test (a crashed test host, a missing results file): count it.
  failed=1
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ $failed -eq 0 ]
