#!/bin/sh
# Make PATH in the work tree (index and files) exactly as in FROM: git restore runs
# without overlay, so files under PATH that FROM lacks are removed.
set -eu
. "$(dirname -- "$0")/lib.sh"
load_paths

from=$(read_state "$RUN_DIR/inputs.env" from_sha)
path=$(read_state "$RUN_DIR/inputs.env" path)
wt=$(worktree_path)
git -C "$wt" restore --source="$from" --staged --worktree -- "$path"
git -C "$wt" status --short
