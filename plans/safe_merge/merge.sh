#!/bin/sh
# Merge the recorded BRANCH sha into the work tree with --no-ff (a conflict fails the
# step), check the result is a merge of exactly the two recorded commits, record its sha.
set -eu
. "$(dirname -- "$0")/lib.sh"
load_paths

pre=$(read_state "$RUN_DIR/record.env" pre_sha)
branch=$(read_state "$RUN_DIR/record.env" branch_sha)
wt=$(worktree_path)

if ! git -C "$wt" merge --no-ff --no-edit -m "Merge branch '$BRANCH' into $TARGET" \
    -m "safe_merge run $RUN_ID" --end-of-options "$branch"; then
    git -C "$wt" status --short >&2
    die "merging '$BRANCH' into '$TARGET' failed (conflict?): nothing was changed"
fi

merge=$(git -C "$wt" rev-parse --verify HEAD)
[ "$(git -C "$wt" rev-parse --verify "$merge^1")" = "$pre" ] &&
    [ "$(git -C "$wt" rev-parse --verify "$merge^2")" = "$branch" ] ||
    die "merge commit $merge does not have parents $pre and $branch"

printf 'merge_sha=%s\n' "$merge" | write_state "$RUN_DIR/merge.env"
echo "merged: $merge"
