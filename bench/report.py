#!/usr/bin/env python3
"""bench/RESULTS.md from the JSON files bench/run.sh (or bench/gpu.sh) wrote:
lavit-<shape>-<workload>.json beside torch-<shape>-<workload>.json."""

import argparse
import datetime
import glob
import json
import os
import platform


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def mem_gib():
    try:
        with open("/proc/meminfo") as f:
            kib = int(f.readline().split()[1])
            return f"{kib / 2**20:.0f} GiB"
    except OSError:
        return "unknown"


def mib(b):
    return "n/a" if b is None else f"{b / 2**20:.0f} MiB"


def matmul_table(shape, by_tool, lv):
    """The matrix products of a training step, lavit beside PyTorch, largest share of a step
    first (FLOPs × times per step)."""
    ours, theirs = by_tool.get("lavit", []), by_tool.get("torch", [])
    if not ours:
        return
    key = lambda sh: (sh["name"], sh["batch"], sh["m"], sh["k"], sh["n"], sh["layout"])
    torch_by = {key(r["shape"]): r for r in theirs}
    peak = lv.get("peak_flops_per_s")
    print(f"### `{shape}`: the matrix products of a training step, one by one (f32)\n")
    print("| product | batch × [m×k]·[k×n], transposed operand | per step | lavit | PyTorch | lavit GFLOP/s | PyTorch GFLOP/s | lavit / PyTorch | lavit % of peak |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in sorted(ours, key=lambda r: -r["flops"] * r["shape"]["per_step"]):
        sh, t = r["shape"], torch_by.get(key(r["shape"]))
        lg = r["flops_per_s"] / 1e9
        tg = t["flops_per_s"] / 1e9 if t else None
        pct = f"{100 * r['flops_per_s'] / peak:.0f}%" if peak else "n/a"
        tms = f"{1e3 * t['median_s']:.2f} ms" if t else "n/a"
        tgs = f"{tg:.1f}" if tg else "n/a"
        ratio = f"{lg / tg:.2f}×" if tg else "n/a"
        print(f"| {sh['name']} | {sh['batch']} × [{sh['m']}×{sh['k']}]·[{sh['k']}×{sh['n']}], {sh['layout']} | {sh['per_step']} | "
              f"{1e3 * r['median_s']:.2f} ms | {tms} | {lg:.1f} | {tgs} | {ratio} | {pct} |")
    print()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--command", default="bench/run.sh")
    ap.add_argument("--title", default="lavit bench vs the PyTorch reference")
    a = ap.parse_args()
    runs = {}
    matmuls = {}
    meta = {}
    for path in sorted(glob.glob(os.path.join(a.dir, "*.json"))):
        tool, rest = os.path.basename(path)[:-5].split("-", 1)
        shape, _ = rest.rsplit("-", 1)
        with open(path) as f:
            doc = json.load(f)
        meta.setdefault(tool, doc)
        for r in doc["results"]:
            if r["workload"] == "matmul":
                matmuls.setdefault(shape, {}).setdefault(tool, []).append(r)
                runs.setdefault(shape, {})
                continue
            runs.setdefault(shape, {}).setdefault(r["workload"], {})[tool] = (r, doc)
    lv, th = meta.get("lavit", {}), meta.get("torch", {})
    print(f"# {a.title}\n")
    print(f"Produced by `{a.command}` on {datetime.date.today()}.\n")
    print(f"* machine: {cpu_model()}, {os.cpu_count()} cores, {mem_gib()}")
    print(f"* lavit: backend `{lv.get('backend')}`, device `{lv.get('device')}`, precision {lv.get('precision')}")
    print(f"* PyTorch {th.get('torch')} on `{th.get('device')}`, {th.get('threads')} threads, float32")
    w = lv.get("workload", {})
    print(
        f"* workload: batch 1, image {w.get('image_side')}×{w.get('image_side')} px, "
        f"{w.get('prompt_tokens')} prompt + {w.get('num_latent')} latent + {w.get('answer_tokens')} answer tokens, "
        f"d_T {w.get('d_teacher')}, trajectory over the last {w.get('layers')} layers, {w.get('decode_tokens')} decoded tokens; "
        "median of the timed runs after a warm-up run"
    )
    print("* peak memory: growth of the process's peak RSS once the model is built (weights excluded), "
          "one process per workload")
    if lv.get("peak_how"):
        print(f"* MFU: FLOPs of the workload (`2 · params · tokens` + attention, counted by lavit; "
              f"the same count for PyTorch) per second against a peak of {lv['peak_how']}")
    print()
    units = {"train_step": "tokens/s", "extract": "samples/s", "prefill": "tokens/s", "decode": "tokens/s"}
    names = {
        "train_step": "train step (fwd + bwd + AdamW, CE + V_top + traj, gate)",
        "extract": "teacher extraction (V_top + trajectory)",
        "prefill": "generation: prefill",
        "decode": "generation: decode (KV cache)",
    }
    for shape, works in runs.items():
        if not works:
            matmul_table(shape, matmuls.get(shape, {}), lv)
            continue
        any_doc = next(iter(next(iter(works.values())).values()))[1]
        print(f"## `{shape}` ({any_doc.get('params', '?')} parameters, sequence {any_doc.get('sequence_tokens')} tokens, "
              f"{any_doc.get('image_tokens')} image tokens)\n")
        print("| workload | lavit | PyTorch | lavit / PyTorch | lavit MFU | PyTorch MFU | lavit peak mem | PyTorch peak mem | mem ratio |")
        print("|---|---|---|---|---|---|---|---|---|")
        for key in ["train_step", "extract", "prefill", "decode"]:
            if key not in works:
                continue
            u = units[key]
            field = "samples_per_s" if key == "extract" else "tokens_per_s"
            l = works[key].get("lavit", ({}, {}))[0]
            t = works[key].get("torch", ({}, {}))[0]
            lt, tt = l.get(field), t.get(field)
            ratio = f"{lt / tt:.2f}×" if lt and tt else "n/a"
            lm, tm = l.get("peak_rss_growth_bytes"), t.get("peak_rss_growth_bytes")
            mr = f"{lm / tm:.2f}" if lm is not None and tm else "n/a"
            fmt = (lambda v: f"{v:.2f} {u}") if key == "extract" else (lambda v: f"{v:.1f} {u}")
            lmfu = l.get("mfu")
            tmfu = lmfu * tt / lt if lmfu is not None and lt and tt else None
            pct = lambda m: "n/a" if m is None else f"{100 * m:.1f}%"
            print(f"| {names[key]} | {fmt(lt) if lt else 'n/a'} | {fmt(tt) if tt else 'n/a'} | {ratio} | {pct(lmfu)} | {pct(tmfu)} | "
                  f"{mib(lm) if key != 'decode' else ''} | {mib(tm) if key != 'decode' else ''} | {mr if key != 'decode' else ''} |")
        ex = works.get("extract", {}).get("lavit", ({}, {}))[0]
        if ex.get("attention_bytes_all_layers"):
            print(f"\nAttention kept by lavit's extraction: {mib(ex['attention_bytes_captured'])}; "
                  f"every layer's full map (what `output_attentions=True` returns): {mib(ex['attention_bytes_all_layers'])}.")
        print()
        matmul_table(shape, matmuls.get(shape, {}), lv)
    # The analysis of the numbers (profiles, the remaining gap), written by hand beside them.
    notes = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ANALYSIS.md")
    if os.path.exists(notes):
        with open(notes) as f:
            print(f.read().rstrip())


if __name__ == "__main__":
    main()
