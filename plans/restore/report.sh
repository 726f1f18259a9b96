#!/bin/sh
# Print a summary and write runs/RUN_ID/result.env and last.env (the last restore).
set -eu
. "$(dirname -- "$0")/lib.sh"
load_paths

path=$(read_state "$RUN_DIR/inputs.env" path)
from_ref=$(read_state "$RUN_DIR/inputs.env" from_ref)
from=$(read_state "$RUN_DIR/inputs.env" from_sha)
base=$(read_state "$RUN_DIR/inputs.env" base_sha)
commit=$(read_state "$RUN_DIR/commit.env" commit_sha)

result=$(
    cat <<STATE
result=restored
run_id=$RUN_ID
repo=$TOP
path=$path
from_ref=$from_ref
from_sha=$from
base=$BASE
base_sha=$base
new_branch=$NEW_BRANCH
commit_sha=$commit
finished_at=$(now)
STATE
)
printf '%s\n' "$result" | write_state "$RUN_DIR/result.env"
printf '%s\n' "$result" | write_state "$STATE_DIR/last.env"

echo "restored '$path' from $from_ref ($from)"
echo "new branch '$NEW_BRANCH' at $commit (on $BASE at $base)"
git -C "$TOP" diff --stat "$base" "$commit" --
