import sys, time, statistics, torch
sys.path.insert(0, 'bench')
torch.set_num_threads(2)
import peers
from chatrlhf.models import load_model
from chatrlhf.chat_format import render
from chatrlhf.heads import masked_lm_loss
from chatrlhf.train_utils import pad_right, adamw
model, tok = load_model(None)
pairs = peers.demos(64)
rend = [render([{"role":"user","content":q},{"role":"assistant","content":a}], tok, max_length=256) for q,a in pairs]
batches = [rend[i:i+8] for i in range(0, 64, 8)][:4]
opt = torch.optim.AdamW([p for p in model.parameters()], lr=1e-5, fused=True)
def ours(b):
    ids, attn, mask = pad_right([r.ids for r in b], tok.pad_token_id, [r.mask for r in b])
    loss = masked_lm_loss(model, ids, attn, mask); loss.backward()
def hf(b):
    ids, attn, mask = pad_right([r.ids for r in b], tok.pad_token_id, [r.mask for r in b])
    labels = ids.masked_fill(mask == 0, -100)
    out = model(input_ids=ids, attention_mask=attn, labels=labels); out.loss.backward()
model.train()
for name, f in (("ours", ours), ("hf-labels", hf), ("ours", ours), ("hf-labels", hf)):
    ts = []
    for b in batches:
        t = time.perf_counter(); f(b); torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0); opt.step(); opt.zero_grad(set_to_none=True); ts.append(time.perf_counter() - t)
    print(name, [round(x, 2) for x in ts], "T:", [max(len(r.ids) for r in b) for b in batches])
