#!/bin/bash
# Session 13: two loop rounds from the cpu preset's seed-0 PPO (issue #14).
set -u
export PYTHONPATH=/work/wt-run/src
C="python -c 'from chatrlhf.cli import main; main()'"
cr() { python -c "from chatrlhf.cli import main; main()" "$@"; }
DB=/work/runs/registry.db
R=/work/runs/loop13
mkdir -p $R
t() { date +%s; }
cr models list --db $DB
cr models promote s13-cpu-ppo1 --no-gate --report "session 13 start: cpu preset seed 0" --db $DB || exit 1
KEY=$(cr keys create --name sim13 --db $DB | grep -o 'sk-[A-Za-z0-9_-]*' | head -1)
echo "key ${KEY:0:6}..."
cr serve --db $DB --port 8013 > $R/serve.log 2>&1 &
SP=$!
for i in $(seq 60); do curl -s -o /dev/null http://127.0.0.1:8013/ && break; sleep 2; done
for round in 1 2; do
  t0=$(t)
  cr simulate traffic --url http://127.0.0.1:8013 --key $KEY --users 8 --conversations 32 --seed $round \
     --out $R/traffic$round feedback_rate=1 regenerate_rate=1 max_tokens=96 > $R/traffic$round.log 2>&1
  t1=$(t); echo "round $round traffic $((t1-t0)) s"
  cr loop --db $DB --config cpu --loop-dir $R/loop --outside-data /work/shared/data ppo.iterations=10 > $R/loop$round.log 2>&1
  echo "round $round loop rc $? $(( $(t)-t1 )) s"
  cr models list --db $DB | tail -5
done
kill $SP
