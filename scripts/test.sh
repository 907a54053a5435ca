#!/usr/bin/env bash
# Set everything up (idempotent) and run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/env.sh

# Debian packages some tests need, installed as root when missing, with one apt-get update.
# The tests that need a missing one say so and are skipped.
apt_wanted=()
# The compose-file test checks docker-compose.yaml offline (no Docker engine needed).
command -v docker-compose >/dev/null || apt_wanted+=(docker-compose)
# The distributed-shape tests (tests/distributed): PostgreSQL and Redis servers.
compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || apt_wanted+=(postgresql)
command -v redis-server >/dev/null || apt_wanted+=(redis-server)
# The console's browser test drives Debian's chromium with Playwright (whose own browser download
# is not reachable here).
[ -x /usr/bin/chromium ] || apt_wanted+=(chromium)
if [ ${#apt_wanted[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_wanted[@]}") >/dev/null 2>&1 \
    || echo "test: could not install ${apt_wanted[*]}; the tests that need them will be skipped"
fi

status=0
python -m pytest "$@" || status=$?
if [ "$status" = 5 ]; then
  echo "test: pytest collected no tests: that is a failure, not a pass" >&2
fi
exit "$status"
