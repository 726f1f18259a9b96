#!/bin/sh
# Create a detached work tree at the recorded TARGET sha in a fresh temp dir (its path
# is recorded in runs/RUN_ID/worktree.env for the later steps and cleanup).
set -eu
. "$(dirname -- "$0")/lib.sh"
load_paths

pre=$(read_state "$RUN_DIR/record.env" pre_sha)
tmp=$(mktemp -d -- "${TMPDIR:-/tmp}/planrun-safe-merge.XXXXXX")
tmp=$(cd -- "$tmp" && pwd -P)
printf 'tmp_dir=%s\n' "$tmp" | write_state "$RUN_DIR/worktree.env"
wt=$(worktree_path)
git -C "$TOP" worktree add --detach -- "$wt" "$pre"
