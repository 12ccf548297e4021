"""PyTorch reference for bench/train-step.ts: the same GPT and MLP training steps on one CPU thread.

Prints one JSON line per model: {"model", "step_ms", "items_per_s", "peak_rss_mb"}. Run by the TypeScript bench
side by side with Tessera's own step, with OPENBLAS_NUM_THREADS=1 and torch.set_num_threads(1).
"""
import json, math, resource, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(1)
torch.manual_seed(0)
cfg = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
steps = int(cfg.get("steps", 20))
warmup = int(cfg.get("warmup", 3))


class Block(nn.Module):
    def __init__(self, c, h):
        super().__init__()
        self.h = h
        self.ln1, self.ln2 = nn.LayerNorm(c), nn.LayerNorm(c)
        self.qkv, self.proj = nn.Linear(c, 3 * c), nn.Linear(c, c)
        self.fc, self.out = nn.Linear(c, 4 * c), nn.Linear(4 * c, c)

    def forward(self, x, mask):
        b, t, c = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.h, c // self.h).permute(2, 0, 3, 1, 4)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(c // self.h) + mask[:t, :t]
        y = (att.softmax(-1) @ v).transpose(1, 2).reshape(b, t, c)
        x = x + self.proj(y)
        return x + self.out(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, vocab, c, h, layers, ctx):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, c), nn.Embedding(ctx, c)
        self.blocks = nn.ModuleList(Block(c, h) for _ in range(layers))
        self.lnf = nn.LayerNorm(c)
        self.register_buffer("mask", torch.triu(torch.full((ctx, ctx), -1e9), 1))

    def forward(self, idx):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for blk in self.blocks:
            x = blk(x, self.mask)
        return self.lnf(x) @ self.wte.weight.t()


def timed(name, model, make_batch, loss_fn, items_per_step):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    x, y = make_batch()
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        loss.item()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    times.sort()
    step = times[len(times) // 2]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"model": name, "step_ms": step * 1e3, "items_per_s": items_per_step / step, "peak_rss_mb": rss}), flush=True)


g = cfg.get("gpt", {"vocab": 65, "width": 128, "heads": 4, "layers": 2, "context": 64, "batch": 16})
gpt = GPT(g["vocab"], g["width"], g["heads"], g["layers"], g["context"])
timed(
    "gpt",
    gpt,
    lambda: (torch.randint(0, g["vocab"], (g["batch"], g["context"])), torch.randint(0, g["vocab"], (g["batch"], g["context"]))),
    lambda logits, y: F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)),
    g["batch"] * g["context"],
)

m = cfg.get("mlp", {"input": 784, "hidden": [256, 128], "classes": 10, "batch": 64})
dims = [m["input"], *m["hidden"]]
layers = []
for a, b in zip(dims, dims[1:]):
    layers += [nn.Linear(a, b), nn.ReLU()]
mlp = nn.Sequential(*layers, nn.Linear(dims[-1], m["classes"]))
timed(
    "mlp",
    mlp,
    lambda: (torch.rand(m["batch"], m["input"]), torch.randint(0, m["classes"], (m["batch"],))),
    F.cross_entropy,
    m["batch"],
)
