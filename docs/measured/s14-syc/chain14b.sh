#!/bin/bash
# wait for the seed-1 thumbs loop; replay the traffic on its candidate; the thumbs loop again with the
# final code (wt-14b, seed 0) and its replay; then the cpu preset seeds 1 and 2
cd /work/runs/syc14
while ! grep -q "loop rc" run10s1.out; do sleep 10; done
CAND=pw10s1-r1 TAG=abs1 ./ab.sh > abs1.out 2>&1
sed 's|/work/wt-14/|/work/wt-14b/|g' syc14.sh > syc14b.sh; chmod +x syc14b.sh
sed 's|/work/wt-14/|/work/wt-14b/|g' ab.sh > abb.sh; chmod +x abb.sh
IT=10 SEEDTAG=b ./syc14b.sh > run10b.out 2>&1
CAND=pw10b-r1 TAG=abb ./abb.sh > abb.out 2>&1
cd /work/runs
export PYTHONPATH=/work/wt-14b/src
for s in 1 2; do
  t0=$(date +%s)
  python3 -c "from chatrlhf.cli import main; main()" pipeline --config cpu --run-dir /work/runs/s14-seed$s \
     --outside-data /work/shared/data seed=$s > /work/runs/s14-seed$s.log 2>&1
  echo "seed $s rc $? $(( $(date +%s)-t0 )) s" >> /work/runs/chain14.out
done
