#!/bin/sh
# Write the final state: runs/RUN_ID/result.env, and the same content to last_merge.env
# (the last successful safe merge; the restore plan reads its pre_sha).
set -eu
. "$(dirname -- "$0")/lib.sh"
load_paths

pre=$(read_state "$RUN_DIR/record.env" pre_sha)
branch=$(read_state "$RUN_DIR/record.env" branch_sha)
merge=$(read_state "$RUN_DIR/merge.env" merge_sha)

result=$(
    cat <<STATE
result=merged
run_id=$RUN_ID
repo=$TOP
target=$TARGET
branch=$BRANCH
remote=$REMOTE
pre_sha=$pre
branch_sha=$branch
merge_sha=$merge
finished_at=$(now)
STATE
)
printf '%s\n' "$result" | write_state "$RUN_DIR/result.env"
printf '%s\n' "$result" | write_state "$STATE_DIR/last_merge.env"
said="merged $BRANCH into $TARGET: $pre -> $merge, pushed to $REMOTE"
echo "$said"
printf 'summary=%s\n' "$said" >>"$PLANRUN_OUTPUT"
