#!/usr/bin/env bash
# Run google-cloud-pubsub's own system tests (tests/system.py of the 2.44.0 sdist, gRPC cases) against
# the local Pub/Sub emulator. Exits with pytest's exit code.
#
# Usage: tests/conformance/run_pubsub_system_tests.sh [extra pytest args]
# Needs: the project's virtualenv active (or PYTHON pointing at its interpreter).
set -euo pipefail

PYTHON="${PYTHON:-python}"
PUBSUB_VERSION="2.44.0"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
WORK="$(mktemp -d)"
SERVER_PID=""

# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

installed="$("$PYTHON" -c 'from importlib.metadata import version; print(version("google-cloud-pubsub"))')"
if [[ "$installed" != "$PUBSUB_VERSION" ]]; then
  echo "google-cloud-pubsub $installed is installed; the system tests are those of $PUBSUB_VERSION" >&2
  exit 2
fi

# Test-only dependencies of tests/system.py (pinned).
"$PYTHON" -m pip install --quiet --disable-pip-version-check \
  "flaky==3.8.1" "psutil==7.2.2" "google-cloud-testutils==1.10.1" "mock==5.2.0"

"$PYTHON" -m pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
  "google-cloud-pubsub==$PUBSUB_VERSION" -d "$WORK"
tar xzf "$WORK/google_cloud_pubsub-$PUBSUB_VERSION.tar.gz" -C "$WORK"
SDIST="$WORK/google_cloud_pubsub-$PUBSUB_VERSION"

PORT="$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')"
ADDRESS="127.0.0.1:$PORT"
READY="$WORK/server.out"
(cd "$ROOT" && exec "$PYTHON" -m localcloud.pubsub "$ADDRESS") >"$READY" 2>"$WORK/server.err" &
SERVER_PID=$!
for _ in $(seq 1 100); do
  grep -q "pubsub ready" "$READY" 2>/dev/null && break
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    cat "$WORK/server.err" >&2
    echo "the emulator did not start" >&2
    exit 2
  fi
  sleep 0.1
done
grep -q "pubsub ready" "$READY" || { echo "the emulator did not report ready" >&2; exit 2; }

status=0
(
  cd "$SDIST"
  unset KOKORO_GFILE_DIR GOOGLE_APPLICATION_CREDENTIALS
  export PUBSUB_EMULATOR_HOST="$ADDRESS" PUBSUB_PROJECT_ID="emulator-project"
  export PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}"
  "$PYTHON" -m pytest -p pubsub_conformance_plugin tests/system.py -k "not rest" \
    -p no:cacheprovider --rootdir="$SDIST" -c /dev/null -rs -q "$@"
) || status=$?
exit "$status"
