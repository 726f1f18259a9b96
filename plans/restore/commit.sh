#!/bin/sh
# Commit the restored PATH in the work tree, check the commit's tree matches FROM under
# PATH, then create NEW_BRANCH at it (update-ref with an empty old value: it must not
# exist yet, so an existing branch is never overwritten).
set -eu
. "$(dirname -- "$0")/lib.sh"
load_paths

from=$(read_state "$RUN_DIR/inputs.env" from_sha)
path=$(read_state "$RUN_DIR/inputs.env" path)
wt=$(worktree_path)

git -C "$wt" commit --quiet -m "Restore $path from $from" -m "restore run $RUN_ID"
commit=$(git -C "$wt" rev-parse --verify HEAD)
git -C "$wt" diff --quiet "$from" "$commit" -- "$path" ||
    die "commit $commit does not match $from under '$path'"

git -C "$TOP" update-ref -m "restore $RUN_ID" --end-of-options \
    "refs/heads/$NEW_BRANCH" "$commit" "" ||
    die "could not create branch '$NEW_BRANCH' (it appeared meanwhile?)"
printf 'commit_sha=%s\n' "$commit" | write_state "$RUN_DIR/commit.env"
echo "created $NEW_BRANCH at $commit"
