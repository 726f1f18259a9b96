#!/bin/sh
# Push the merge commit to REMOTE's TARGET. Never forced: the remote only accepts a
# fast-forward. The plan retries this step on exit code 128 (transport errors), not on a
# rejection.
set -eu
. "$(dirname -- "$0")/lib.sh"
load_paths

merge=$(read_state "$RUN_DIR/merge.env" merge_sha)
git -C "$TOP" push --end-of-options "$REMOTE" "$merge:refs/heads/$TARGET"
