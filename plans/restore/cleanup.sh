#!/bin/sh
# Runs whatever happened: remove this run's work tree and its temp dir (if the run got
# that far). The user's checkout and the state files stay.
set -eu
. "$(dirname -- "$0")/lib.sh"
remove_run_worktree
