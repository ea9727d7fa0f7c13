#!/bin/bash
# wait for the seed-1 thumbs loop; replay the traffic on its candidate; the thumbs loop again with the
# final code (wt-14b, seed 0) and its replay; then the cpu preset seeds 1 and 2
cd /work/runs/syc14
while ! grep -q "loop rc" run10s1.out; do sleep 10; done
CAND=pw10s1-r1 TAG=abs1 ./ab.sh > abs1.out 2>&1
# (as run: sed-made copies syc14b.sh/abb.sh with /work/wt-14b in place of /work/wt-14; the same as WT=)
WT=/work/wt-14b IT=10 SEEDTAG=b ./syc14.sh > run10b.out 2>&1
WT=/work/wt-14b CAND=pw10b-r1 TAG=abb ./ab.sh > abb.out 2>&1
cd /work/runs
export PYTHONPATH=/work/wt-14b/src
for s in 1 2; do
  t0=$(date +%s)
  python3 -c "from chatrlhf.cli import main; main()" pipeline --config cpu --run-dir /work/runs/s14-seed$s \
     --outside-data /work/shared/data seed=$s > /work/runs/s14-seed$s.log 2>&1
  echo "seed $s rc $? $(( $(date +%s)-t0 )) s" >> /work/runs/chain14.out
done
