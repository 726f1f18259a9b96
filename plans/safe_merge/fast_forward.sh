#!/bin/sh
# Move TARGET from the recorded sha to the merge commit, with update-ref checking the
# old value: if anyone moved TARGET meanwhile, this fails and nothing changes.
set -eu
. "$(dirname -- "$0")/lib.sh"
load_paths

pre=$(read_state "$RUN_DIR/record.env" pre_sha)
merge=$(read_state "$RUN_DIR/merge.env" merge_sha)

where=$(checked_out_at "$TARGET")
[ -z "$where" ] || die "'$TARGET' is now checked out in $where: not moving it"

git -C "$TOP" update-ref -m "safe_merge $RUN_ID: merge $BRANCH" --end-of-options \
    "refs/heads/$TARGET" "$merge" "$pre" ||
    die "'$TARGET' is no longer at $pre (moved by someone else?): not updated"
echo "$TARGET: $pre -> $merge"
