#!/bin/sh
# Check the restored PATH matches FROM, in the index and in the files.
set -eu
. "$(dirname -- "$0")/lib.sh"
load_paths

from=$(read_state "$RUN_DIR/inputs.env" from_sha)
path=$(read_state "$RUN_DIR/inputs.env" path)
wt=$(worktree_path)
git -C "$wt" diff --cached --quiet "$from" -- "$path" ||
    die "the index differs from $from under '$path'"
git -C "$wt" diff --quiet "$from" -- "$path" ||
    die "the files differ from $from under '$path'"
echo "'$path' matches $from"
