#!/bin/sh
# Create a detached work tree at the recorded TARGET sha in a fresh temp dir (its path
# is recorded in runs/RUN_ID/worktree.env for the later steps and cleanup).
set -eu
. "$(dirname -- "$0")/lib.sh"
load_paths

pre=$(read_state "$RUN_DIR/record.env" pre_sha)
create_run_worktree "$pre"
