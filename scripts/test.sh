#!/usr/bin/env bash
# The README's test command on any Debian machine, fresh or not: installs what the suite needs when it is
# missing (scripts/setup-test-env.sh: Node 24, Debian packages, node_modules, Docker engine and local images),
# then runs every test (npm test) with the environment the set-up wrote (.ci-work/test.env).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-test-env.sh .ci-work/test.env
set -a
# shellcheck disable=SC1091
. .ci-work/test.env
set +a
npm test
