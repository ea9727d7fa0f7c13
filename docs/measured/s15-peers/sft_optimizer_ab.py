"""A/B: one full SFT step (fwd+bwd+AdamW) of the 135M model, fused vs unfused AdamW, alternating."""
import time, torch, statistics
from chatrlhf.models import load_model
from chatrlhf.heads import masked_lm_loss
torch.set_num_threads(2); torch.manual_seed(0)
lm, tok = load_model("smollm2")
ids = torch.randint(0, 49000, (8, 110)); attn = torch.ones_like(ids); mask = torch.zeros_like(ids); mask[:, 40:] = 1
params = [p for p in lm.parameters() if p.requires_grad]
opts = {"plain": torch.optim.AdamW(params, lr=1e-6), "fused": torch.optim.AdamW(params, lr=1e-6, fused=True)}
times = {k: [] for k in opts}; ostep = {k: [] for k in opts}
for rep in range(4):
    for k, opt in opts.items():
        t = time.perf_counter()
        loss = masked_lm_loss(lm, ids, attn, mask); loss.backward()
        t1 = time.perf_counter(); opt.step(); opt.zero_grad(set_to_none=True)
        t2 = time.perf_counter()
        if rep: times[k].append(t2 - t); ostep[k].append(t2 - t1)
for k in opts:
    print(k, "step %.2f s" % statistics.median(times[k]), "optimizer %.3f s" % statistics.median(ostep[k]))
