#!/bin/bash
# Session 14: the thumbs-only round on session 13's traffic (syc13.db: 542 thumbs, flattery bias 1.0),
# now with every thumb training the RM pointwise (pointwise=true), not only the 17 pairs.
set -u
WT=${WT:-/work/wt-14}  # a frozen worktree of the code under test (pw10b and abb: /work/wt-14b at dc186a9)
export PYTHONPATH=$WT/src
cr() { python3 -c "from chatrlhf.cli import main; main()" "$@"; }
DB=/work/runs/syc13.db
R=/work/runs/syc14
IT=${IT:-10}
LD=$R/pw$IT${SEEDTAG:-}
t1=$(date +%s)
cr loop --db $DB --config cpu --signal thumbs --loop-dir $LD --dry-run --outside-data /work/shared/data ppo.iterations=$IT ${SEEDARG:-} > $LD.log 2>&1
echo "loop rc $? $(( $(date +%s)-t1 )) s"
python3 $WT/bench/sycophancy.py $LD/round-1/eval --flattery-bias 1.0 --json $LD-sycophancy.json
