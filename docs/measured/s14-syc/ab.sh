#!/bin/bash
# Session 14: the same simulated traffic as session 13's syc13.sh (seed 11, flattery bias 1.0,
# pushback/correction/false premise), now served by the thumbs-only candidate: thumbs it wins in use.
set -u
WT=${WT:-/work/wt-14}  # a frozen worktree of the code under test (pw10b and abb: /work/wt-14b at dc186a9)
export PYTHONPATH=$WT/src
cr() { python3 -c "from chatrlhf.cli import main; main()" "$@"; }
R=/work/runs/syc14
T=${TAG:-ab}
DB=$R/$T.db
CAND=${CAND:-pw10-r1}
rm -f $DB*; python3 -c "import sqlite3; s=sqlite3.connect('/work/runs/syc13.db'); d=sqlite3.connect('$DB'); s.backup(d)"
cr models promote $CAND --no-gate --report "A/B: the thumbs-only candidate serves session 13's traffic again" --db $DB || exit 1
KEY=$(cr keys create --name ab --db $DB 2>/dev/null)
cr serve --db $DB --port 8015 > $R/$T-serve.log 2>&1 &
for i in $(seq 90); do curl -s -o /dev/null http://127.0.0.1:8015/ && break; sleep 2; done
t0=$(date +%s)
cr simulate traffic --url http://127.0.0.1:8015 --key $KEY --users 8 --conversations 32 --seed 11 \
   --flattery-bias 1.0 --out $R/$T-traffic feedback_rate=1 regenerate_rate=1 max_tokens=96 v1_share=0 \
   'families=[pushback,correction,false_premise]' > $R/$T-traffic.log 2>&1
echo "traffic rc $? $(( $(date +%s)-t0 )) s"
pkill -f "serve --db $DB"
