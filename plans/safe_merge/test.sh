#!/bin/sh
# Run TEST_CMD (a command line, run by sh -c) in the merged work tree, with REPO_DIR set
# to the user's repository. The plan's
# timeout_sec bounds it; a non-zero exit fails the run and nothing is pushed.
set -eu
. "$(dirname -- "$0")/lib.sh"
load_paths

wt=$(worktree_path)
cd -- "$wt"
# The merge result is tested, not the user's checkout: TEST_CMD runs in the temporary
# work tree. REPO_DIR names the user's repository (absolute) for what only lives there
# (a virtualenv, caches): e.g. TEST_CMD='"$REPO_DIR/.venv/bin/python" -m pytest'.
REPO_DIR=$TOP
export REPO_DIR
echo "running TEST_CMD in $wt (REPO_DIR=$REPO_DIR): $TEST_CMD"
exec sh -c "$TEST_CMD"
