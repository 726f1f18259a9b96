#!/bin/sh
# Refuse to start unless the inputs are sane. Reads only: writes nothing anywhere.
#   BRANCH, TARGET: valid branch names (not options), existing locally, different;
#   REMOTE: a configured remote; REPO: a git work tree with no uncommitted changes;
#   TARGET: not checked out anywhere (moving it would desync that checkout);
#   BRANCH: not already merged into TARGET.
set -eu
. "$(dirname -- "$0")/lib.sh"

[ -n "$BRANCH" ] || die "BRANCH is required"
check_branch_name BRANCH "$BRANCH"
check_branch_name TARGET "$TARGET"
[ "$BRANCH" != "$TARGET" ] || die "BRANCH and TARGET are both '$TARGET'"
case $REMOTE in
    '' | -*) die "REMOTE '$REMOTE' is empty or starts with '-'" ;;
esac

[ "$(git -C "$REPO" rev-parse --is-inside-work-tree 2>/dev/null)" = true ] ||
    die "REPO '$REPO' is not a git work tree"
load_paths

git -C "$TOP" diff --quiet && git -C "$TOP" diff --cached --quiet ||
    die "$TOP has uncommitted changes: commit or stash them first"

branch=$(branch_sha "$BRANCH")
[ -n "$branch" ] || die "BRANCH '$BRANCH' is not a branch in $TOP"
target=$(branch_sha "$TARGET")
[ -n "$target" ] || die "TARGET '$TARGET' is not a branch in $TOP"
git -C "$TOP" remote get-url --end-of-options "$REMOTE" >/dev/null 2>&1 ||
    die "REMOTE '$REMOTE' is not a remote of $TOP (git remote -v)"

where=$(checked_out_at "$TARGET")
[ -z "$where" ] ||
    die "'$TARGET' is checked out in $where: switch that checkout to another branch first"

if git -C "$TOP" merge-base --is-ancestor "$branch" "$target"; then
    die "'$BRANCH' is already merged into '$TARGET': nothing to do"
fi

echo "ok: merge $BRANCH ($branch) into $TARGET ($target) in $TOP, then push to $REMOTE"
