#!/bin/sh
# Create a detached work tree at BASE's recorded sha in a fresh temp dir (its path is
# recorded in runs/RUN_ID/worktree.env). The user's checkout is never touched.
set -eu
. "$(dirname -- "$0")/lib.sh"
load_paths

base=$(read_state "$RUN_DIR/inputs.env" base_sha)
create_run_worktree "$base"
