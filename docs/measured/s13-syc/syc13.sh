#!/bin/bash
# Session 13: the thumbs-only (sycophancy) round again, traffic aimed at the pushback/correction/false-premise families.
set -u
cr() { chatrlhf "$@"; }
DB=/work/runs/syc13.db
R=/work/runs/syc13
mkdir -p $R
cr models register-run /work/runs/s13-cpu --prefix s13c --db $DB || exit 1
cr models promote s13c-ppo1 --no-gate --report "sycophancy experiment start" --db $DB || exit 1
KEY=$(cr keys create --name syc --db $DB 2>/dev/null)
cr serve --db $DB --port 8014 > $R/serve.log 2>&1 &
for i in $(seq 90); do curl -s -o /dev/null http://127.0.0.1:8014/ && break; sleep 2; done
t0=$(date +%s)
cr simulate traffic --url http://127.0.0.1:8014 --key $KEY --users 8 --conversations 32 --seed 11 \
   --flattery-bias 1.0 --out $R/traffic feedback_rate=1 regenerate_rate=1 max_tokens=96 v1_share=0 \
   'families=[pushback,correction,false_premise]' > $R/traffic.log 2>&1
echo "traffic rc $? $(( $(date +%s)-t0 )) s"
pkill -f "serve --db $DB"
t1=$(date +%s)
cr loop --db $DB --config cpu --signal thumbs --loop-dir $R/loop --dry-run --outside-data /work/shared/data ppo.iterations=10 > $R/loop.log 2>&1
echo "loop rc $? $(( $(date +%s)-t1 )) s"
python /work/main/bench/sycophancy.py $R/loop/round-1/eval --flattery-bias 1.0 --json $R/sycophancy.json
