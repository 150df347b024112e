#!/usr/bin/env bash
# Side by side on one machine: two builds' bench_controller, alternating, ROUNDS times
# (the load moves between runs; compare within a round). Prints each run's summary lines.
#   bench/compare_controller.sh OLD_BUILD_DIR NEW_BUILD_DIR [ROUNDS]
# e.g. git worktree add /tmp/old 496136e && cmake -S /tmp/old -B /tmp/old/build && \
#      cmake --build /tmp/old/build -j2 --target bench_controller lanekeeper
set -euo pipefail
old=$1/bench/bench_controller new=$2/bench/bench_controller rounds=${3:-3}
for round in $(seq "$rounds"); do
  for which in old new; do
    bin=$old; [ "$which" = new ] && bin=$new
    echo "== round $round $which apply"
    "$bin" --only-apply --applies 30 2>/dev/null | grep '_summary'
    echo "== round $round $which idle"
    "$bin" --only-idle --lanes 100 --idle-window 30s --scrape-every off 2>/dev/null | grep '_summary'
  done
done
