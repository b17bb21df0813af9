#!/usr/bin/env python3
"""The PyTorch reference for `lavit bench`: the same three workloads with HF transformers'
Qwen2_5_VLForConditionalGeneration, the way the reference LaViT code does them.

* train: forward with the curriculum gate as an additive 4-D attention mask (g = 0.5 on the
  image columns of the latent / answer / prompt-after-image rows), CE on latent + answer
  tokens, V_top MSE (2-layer GELU head on the mean latent state) and trajectory KL (linear
  query head against the image states), backward, torch.optim.AdamW; vision tower frozen.
* extract: eager attention with output_attentions=True (every layer's full [heads, S, S]
  map is materialised), then V_top and the per-step trajectory over the last 8 layers.
* generate: prefill of the prompt, then greedy decoding with the KV cache.
* matmul: each matrix product of a training step that `lavit bench --what matmul` timed (read
  from its JSON with --shapes-from), with torch.matmul.

Same random-weight model shape (bench/configs/small.json, assets/configs/*.json), same sequence layout and lengths as
core/src/perf.rs, batch 1, float32. Peak memory: growth of the process's peak RSS over its
RSS once the model is built (Linux VmHWM, reset through /proc/self/clear_refs), as lavit
measures; run one workload per process (--what) so an earlier one's freed memory does not hide
a later one's.

    python bench/reference.py --config bench/configs/small.json --json out.json
"""

import argparse
import json
import math
import statistics
import time

import torch
import torch.nn.functional as F
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration


def status_bytes(key):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def with_memory(fn):
    """Runs fn(ready); ready() is called once the model is built. Returns fn's value and the
    growth of peak RSS from that point (the workload's own memory, weights excluded)."""
    state = {}

    def ready():
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass
        state["before"] = status_bytes("VmRSS:")

    value = fn(ready)
    before, peak = state.get("before"), status_bytes("VmHWM:")
    return value, (None if before is None or peak is None else max(0, peak - before))


def timed(warmup, iters, fn, sync):
    for _ in range(warmup):
        fn()
    sync()
    ts = []
    for _ in range(max(1, iters)):
        t0 = time.perf_counter()
        fn()
        sync()
        ts.append(time.perf_counter() - t0)
    ts.sort()
    return {"median_s": statistics.median(ts), "min_s": ts[0], "iters": len(ts)}


class Sequence:
    """The token layout of core/src/perf.rs::Sequence (ids differ, lengths match)."""

    def __init__(self, cfg, a, device):
        v = cfg.vision_config
        unit = v.patch_size * v.spatial_merge_size
        assert a.image_side % unit == 0, f"image side must be a multiple of {unit}"
        g = torch.Generator().manual_seed(0)
        top = min(cfg.text_config.vocab_size, 151000)
        specials = {cfg.image_token_id, cfg.video_token_id, cfg.vision_start_token_id, cfg.vision_end_token_id}

        def words(n):
            out = []
            while len(out) < n:
                t = int(torch.randint(16, top, (1,), generator=g))
                if t not in specials:
                    out.append(t)
            return out

        side = a.image_side // v.patch_size
        n_patches = side * side
        n_img = n_patches // (v.spatial_merge_size**2)
        ids = words(a.prompt_tokens // 2) + [cfg.vision_start_token_id]
        self.img0 = len(ids)
        ids += [cfg.image_token_id] * n_img + [cfg.vision_end_token_id]
        ids += words(a.prompt_tokens - a.prompt_tokens // 2)
        self.prompt_len = len(ids)
        ids += words(a.num_latent)
        self.answer_start = len(ids)
        ids += words(a.answer_tokens + 1)
        self.n_img = n_img
        self.ids = torch.tensor([ids], device=device)
        self.mm = (self.ids == cfg.image_token_id).int()
        patch_dim = v.in_channels * v.temporal_patch_size * v.patch_size**2
        self.pixel_values = (torch.rand(n_patches, patch_dim, generator=g) * 3.9 - 1.8).to(device)
        self.grid = torch.tensor([[1, side, side]], device=device)
        self.image_pos = torch.arange(self.img0, self.img0 + n_img, device=device)
        self.latent_pos = torch.arange(self.prompt_len, self.answer_start, device=device)

    def __len__(self):
        return self.ids.shape[1]


def build(cfg, attn, device):
    torch.manual_seed(0)
    cfg._attn_implementation = attn
    return Qwen2_5_VLForConditionalGeneration(cfg).to(device=device, dtype=torch.float32)


def gate_mask(seq, g, device):
    """Causal mask plus log(g) on the image columns of the rows after the image (gate_prompt)."""
    s = len(seq)
    neg = torch.finfo(torch.float32).min
    m = torch.full((s, s), neg, device=device).triu(1)
    rows = torch.arange(seq.img0 + seq.n_img, s, device=device)
    m[rows[:, None], seq.image_pos[None, :]] += math.log(g)
    return m[None, None]


def bench_train(cfg, a, device, sync, ready):
    seq = Sequence(cfg, a, device)
    model = build(cfg, a.attn, device)
    model.train()
    model.model.visual.requires_grad_(False)
    d = cfg.text_config.hidden_size
    vtop_head = torch.nn.Sequential(torch.nn.Linear(d, d), torch.nn.GELU(), torch.nn.Linear(d, a.d_teacher)).to(device)
    traj_head = torch.nn.Linear(d, d).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    params += list(vtop_head.parameters()) + list(traj_head.parameters())
    opt = torch.optim.AdamW(params, lr=5e-6, weight_decay=0.1)
    g = torch.Generator().manual_seed(1)
    vtop_target = (torch.rand(a.d_teacher, generator=g) - 0.5).to(device)
    traj_target = torch.rand(a.num_latent, seq.n_img, generator=g)
    traj_target = (traj_target / traj_target.sum(-1, keepdim=True)).to(device)
    with torch.no_grad():
        position_ids, _ = model.model.get_rope_index(seq.ids, mm_token_type_ids=seq.mm, image_grid_thw=seq.grid)
    mask = gate_mask(seq, 0.5, device)
    sup = torch.arange(seq.prompt_len, len(seq), device=device)

    def step():
        model.model.rope_deltas = None
        out = model(
            input_ids=seq.ids,
            pixel_values=seq.pixel_values,
            image_grid_thw=seq.grid,
            mm_token_type_ids=seq.mm,
            position_ids=position_ids,
            attention_mask=mask,
            output_hidden_states=True,
            logits_to_keep=0,
        )
        logits = out.logits[0, sup - 1]
        ce = F.cross_entropy(logits, seq.ids[0, sup])
        h = out.hidden_states[-1][0]
        h_lat = h[seq.latent_pos]
        vtop = F.mse_loss(vtop_head(h_lat).mean(0), vtop_target)
        scores = traj_head(h_lat) @ h[seq.image_pos].T / math.sqrt(d)
        traj = F.kl_div(F.log_softmax(scores, -1), traj_target, reduction="batchmean")
        loss = ce + 0.3 * vtop + 0.3 * traj
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        assert math.isfinite(loss.item())

    ready()
    t = timed(a.warmup, a.iters, step, sync)
    return t, seq


def bench_extract(cfg, a, device, sync, ready):
    seq = Sequence(cfg, a, device)
    model = build(cfg, "eager", device)
    model.eval()
    n_layers = cfg.text_config.num_hidden_layers
    last = list(range(n_layers - min(a.layers, n_layers), n_layers))
    k = max(1, a.num_latent)
    start, end = seq.answer_start, len(seq)
    per = -(-(end - start) // k)
    spans = [(start + i * per, min(end, start + (i + 1) * per)) for i in range(k)]
    spans = [s for s in spans if s[0] < s[1]]

    def extract():
        model.model.rope_deltas = None
        with torch.no_grad():
            out = model(
                input_ids=seq.ids,
                pixel_values=seq.pixel_values,
                image_grid_thw=seq.grid,
                mm_token_type_ids=seq.mm,
                output_attentions=True,
                output_hidden_states=True,
                logits_to_keep=1,
            )
            vtop = out.hidden_states[-1][0, seq.image_pos].cpu()
            att = torch.stack([out.attentions[i][0] for i in last]).mean(0).mean(0)  # [S, S]
            for s0, s1 in spans:
                m = att[s0:s1][:, seq.image_pos].mean(0)
                m = (m - m.min()) / (m.max() - m.min() + 1e-12)
                m.topk(min(8, m.numel()))
        return vtop

    ready()
    return timed(a.warmup, a.iters, extract, sync)


def bench_generate(cfg, a, device, sync, ready):
    seq = Sequence(cfg, a, device)
    model = build(cfg, a.attn, device)
    model.eval()
    ids = seq.ids[:, : seq.prompt_len]
    mm = seq.mm[:, : seq.prompt_len]
    inputs = dict(input_ids=ids, pixel_values=seq.pixel_values, image_grid_thw=seq.grid, mm_token_type_ids=mm)

    def prefill():
        model.model.rope_deltas = None
        with torch.no_grad():
            model(**inputs, logits_to_keep=1).logits.cpu()

    def gen():
        model.model.rope_deltas = None
        with torch.no_grad():
            out = model.generate(
                **inputs,
                max_new_tokens=a.decode_tokens,
                min_new_tokens=a.decode_tokens,
                do_sample=False,
                eos_token_id=None,
                pad_token_id=0,
            )
        assert out.shape[1] - ids.shape[1] == a.decode_tokens

    ready()
    p = timed(a.warmup, a.iters, prefill, sync)
    t = timed(a.warmup, a.iters, gen, sync)
    return p, t, ids.shape[1]


def bench_matmuls(a, device, sync):
    """Each matrix product lavit timed (its JSON's `matmul` rows: same shapes, same transposed
    operand, f32, a leading batch of 1 for a Linear), one by one with torch.matmul."""
    if not a.shapes_from:
        raise SystemExit("--what matmul needs --shapes-from: lavit bench --what matmul --json's output")
    with open(a.shapes_from) as f:
        shapes = [r["shape"] for r in json.load(f)["results"] if r.get("workload") == "matmul"]
    if not shapes:
        raise SystemExit(f"{a.shapes_from}: no matmul rows (run lavit bench --what matmul --json first)")
    rows = []
    for sh in shapes:
        b, m, k, n = sh["batch"], sh["m"], sh["k"], sh["n"]
        x = torch.rand(b, k, m, device=device).transpose(1, 2) if sh["layout"] == "tn" else torch.rand(b, m, k, device=device)
        y = torch.rand(b, n, k, device=device).transpose(1, 2) if sh["layout"] == "nt" else torch.rand(b, k, n, device=device)
        with torch.no_grad():
            t = timed(a.warmup, a.iters, lambda: torch.matmul(x, y)[0, 0, 0].item(), sync)
        flops = 2.0 * b * m * k * n
        rows.append(dict(workload="matmul", shape=sh, **t, flops=flops, flops_per_s=flops / t["median_s"]))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", required=True, help="a config.json (bench/configs/small.json, assets/configs/*.json)")
    ap.add_argument("--what", default="train,extract,generate")
    ap.add_argument("--image-side", type=int, default=224)
    ap.add_argument("--prompt-tokens", type=int, default=32)
    ap.add_argument("--answer-tokens", type=int, default=32)
    ap.add_argument("--num-latent", type=int, default=4)
    ap.add_argument("--d-teacher", type=int, default=1024)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--decode-tokens", type=int, default=16)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    ap.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"],
                    help="attention of the train and generate workloads (extract is always eager: it reads the maps)")
    ap.add_argument("--shapes-from", help="--what matmul: lavit bench's JSON whose matmul rows list the shapes")
    ap.add_argument("--json")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    sync = (lambda: torch.cuda.synchronize()) if device.type == "cuda" else (lambda: None)
    with open(a.config) as f:
        cfg = Qwen2_5_VLConfig(**json.load(f))
    what = a.what.split(",")
    rows = []
    seq = Sequence(cfg, a, device)
    s = len(seq)
    if "train" in what:
        (t, _), mem = with_memory(lambda r: bench_train(cfg, a, device, sync, r))
        rows.append(dict(workload="train_step", **t, tokens_per_s=s / t["median_s"], peak_rss_growth_bytes=mem))
    if "extract" in what:
        t, mem = with_memory(lambda r: bench_extract(cfg, a, device, sync, r))
        rows.append(dict(workload="extract", **t, samples_per_s=1 / t["median_s"], peak_rss_growth_bytes=mem))
    if "generate" in what:
        (p, t, n), mem = with_memory(lambda r: bench_generate(cfg, a, device, sync, r))
        rows.append(dict(workload="prefill", median_s=p["median_s"], tokens=n, tokens_per_s=n / p["median_s"],
                         peak_rss_growth_bytes=mem))
        dec = max(t["median_s"] - p["median_s"], 1e-9)
        rows.append(dict(workload="decode", median_s=dec, tokens=a.decode_tokens, tokens_per_s=a.decode_tokens / dec))
    if "matmul" in what:
        rows.extend(bench_matmuls(a, device, sync))
    doc = dict(tool="pytorch", torch=torch.__version__, threads=torch.get_num_threads(), device=str(device), attn=a.attn,
               config=a.config, sequence_tokens=s, image_tokens=seq.n_img, results=rows)
    for r in rows:
        print(r)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(doc, f, indent=2)


if __name__ == "__main__":
    main()
