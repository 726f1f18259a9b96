#!/bin/sh
# Check TARGET is not behind REMOTE's copy, then record where TARGET and BRANCH are
# (runs/RUN_ID/record.env): the merge uses these shas and rollback restores TARGET to them.
set -eu
. "$(dirname -- "$0")/lib.sh"
load_paths

target=$(branch_sha "$TARGET")
branch=$(branch_sha "$BRANCH")
[ -n "$target" ] && [ -n "$branch" ] || die "'$TARGET' or '$BRANCH' disappeared"

remote=$(git -C "$TOP" rev-parse --verify --quiet --end-of-options \
    "refs/remotes/$REMOTE/$TARGET^{commit}" || true)
if [ -n "$remote" ] && ! git -C "$TOP" merge-base --is-ancestor "$remote" "$target"; then
    die "'$TARGET' lacks commits of '$REMOTE/$TARGET' ($remote): update it first with" \
        "\`git -C '$TOP' fetch '$REMOTE' '$TARGET:$TARGET'\` (it fast-forwards '$TARGET';" \
        "if git refuses, '$TARGET' has diverged: merge '$REMOTE/$TARGET' into it by hand)," \
        "then run the safe merge again"
fi

write_state "$RUN_DIR/record.env" <<STATE
run_id=$RUN_ID
repo=$TOP
target=$TARGET
branch=$BRANCH
remote=$REMOTE
pre_sha=$target
branch_sha=$branch
recorded_at=$(now)
STATE
echo "recorded $TARGET at $target and $BRANCH at $branch in $RUN_DIR/record.env"
