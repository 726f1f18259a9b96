#!/bin/sh
# Runs whatever happened: remove this run's merge work tree and its temp dir (if the
# run got that far). The user's checkout and the state files stay.
set -eu
. "$(dirname -- "$0")/lib.sh"

if ! TOP=$(git -C "$REPO" rev-parse --show-toplevel 2>/dev/null); then
    echo "REPO '$REPO' is not a git work tree: nothing to clean"
    exit 0
fi
load_paths
if [ ! -f "$RUN_DIR/worktree.env" ]; then
    echo "no work tree was created"
    exit 0
fi

tmp=$(read_state "$RUN_DIR/worktree.env" tmp_dir)
case $tmp in
    /*/planrun-safe-merge.*) ;;
    *) die "unexpected temp dir '$tmp' in $RUN_DIR/worktree.env: not removing it" ;;
esac
if [ -e "$tmp/worktree" ]; then
    git -C "$TOP" worktree remove --force -- "$tmp/worktree"
fi
rm -rf -- "$tmp"
git -C "$TOP" worktree prune
echo "removed $tmp/worktree"
