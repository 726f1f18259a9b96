#!/bin/sh
# Run TEST_CMD (a command line, run by sh -c) in the merged work tree. The plan's
# timeout_sec bounds it; a non-zero exit fails the run and nothing is pushed.
set -eu
. "$(dirname -- "$0")/lib.sh"
load_paths

wt=$(worktree_path)
cd -- "$wt"
echo "running TEST_CMD in $wt: $TEST_CMD"
exec sh -c "$TEST_CMD"
