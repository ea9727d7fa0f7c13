#!/bin/bash
# Session 14: the default loop (signal=all: the served RM's rankings too) on the same biased thumbs, pointwise on
set -u
export PYTHONPATH=/work/wt-14c/src
R=/work/runs/syc14; LD=$R/all10
t1=$(date +%s)
python3 -c "from chatrlhf.cli import main; main()" loop --db /work/runs/syc13.db --config cpu --loop-dir $LD --dry-run \
  --outside-data /work/shared/data ppo.iterations=10 > $LD.log 2>&1
echo "loop rc $? $(( $(date +%s)-t1 )) s"
python3 /work/wt-14c/bench/sycophancy.py $LD/round-1/eval --flattery-bias 1.0 --json $LD-sycophancy.json
