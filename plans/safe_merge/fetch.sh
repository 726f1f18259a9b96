#!/bin/sh
# Fetch REMOTE (the plan retries this step with backoff).
set -eu
. "$(dirname -- "$0")/lib.sh"
load_paths

git -C "$TOP" fetch --end-of-options "$REMOTE"
