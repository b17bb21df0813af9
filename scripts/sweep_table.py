#!/usr/bin/env python3
"""The validation sweep's table (scripts/validation-sweep.sh): one row per configuration of
scripts/validation-configs.txt, from RUNS/<name>/seeds.json — per seed and mean over the seeds:
accuracy on the prior-contradicting validation questions, overall accuracy, the share of
contradicting questions answered with the prior, pointing of the latent attention — and the
configuration the pre-stated rule picks. Usage: sweep_table.py RUNS > sweep.md"""
import json
import os
import sys

runs = sys.argv[1]
cfg_file = os.environ.get("CONFIGS", "scripts/validation-configs.txt")
configs = []
for line in open(cfg_file):
    if line.startswith("#") or not line.strip():
        continue
    name, flags = (x.strip() for x in line.split("|", 1))
    configs.append((name, flags))


def student_rows(name):
    path = os.path.join(runs, name, "seeds.json")
    if not os.path.exists(path):
        return None
    r = json.load(open(path))
    out = []
    for seed, run in zip(r["seeds"], r["runs"]):
        (s,) = run["students"]
        p = s["accuracy"].get("prior") or {}
        a = s.get("attention") or {}
        out.append({
            "seed": seed,
            "student": s["name"],
            "k": run["config"]["num_latent"],
            "commit": run["config"].get("commit", ""),
            "contra": p.get("contradicting"),
            "n_contra": p.get("n_contradicting"),
            "said_prior": p.get("answered_prior"),
            "acc": s["accuracy"]["overall"],
            "pointing": a.get("pointing"),
            "on_image": a.get("image_mass"),
        })
    return out


def mean(v):
    v = [x for x in v if x is not None]
    return sum(v) / len(v) if v else None


def pct(x):
    return "–" if x is None else f"{100 * x:.1f}"


rows = {name: student_rows(name) for name, _ in configs}
print("# Validation sweep\n")
print("Produced by `scripts/validation-sweep.sh` (configurations in "
      "`scripts/validation-configs.txt`), table by `scripts/sweep_table.py`. Validation split "
      "of each seed (300 questions: colour, shape, size; balanced), seeds 0, 1, 2; 6000 steps × "
      "4 samples per student; the bottleneck throughout. Per seed as s0 / s1 / s2, then the "
      "mean; in percent. Δ: the mean difference to the baseline with the same K, paired by "
      "seed.\n")
print("| configuration | prior-contradicting (s0 / s1 / s2) | mean | Δ | overall (mean) | said the prior (mean) | pointing (mean) | attention on image (mean) |")
print("|---|---|---|---|---|---|---|---|")
best = None
commits = set()
for name, flags in configs:
    r = rows[name]
    if r is None:
        print(f"| {name} | not run | | | | | | |")
        continue
    commits.update(x["commit"] for x in r)
    base = rows.get(f"baseline-k{r[0]['k']}")
    delta = None
    if base and r[0]["student"] != "baseline":
        d = [x["contra"] - b["contra"] for x, b in zip(r, base) if x["seed"] == b["seed"]]
        delta = mean(d)
    m = mean([x["contra"] for x in r])
    print(f"| {name} | {' / '.join(pct(x['contra']) for x in r)} | {pct(m)} | "
          f"{'–' if delta is None else f'{100 * delta:+.1f}'} | {pct(mean([x['acc'] for x in r]))} | "
          f"{pct(mean([x['said_prior'] for x in r]))} | {pct(mean([x['pointing'] for x in r]))} | "
          f"{pct(mean([x['on_image'] for x in r]))} |")
    if r[0]["student"] != "baseline":
        key = (m, mean([x["acc"] for x in r]))
        if best is None or key[0] > best[1][0] + 0.01 or (
                abs(key[0] - best[1][0]) <= 0.01 and key[1] > best[1][1]):
            best = (name, key)
n_contra = sorted({x["n_contra"] for r in rows.values() if r for x in r})
print(f"\nPrior-contradicting questions per seed: {n_contra}. Binaries: {', '.join(sorted(commits))}.")
if best:
    print(f"\nThe rule (highest mean prior-contradicting accuracy; within 1 point, the higher "
          f"overall accuracy) picks **{best[0]}** ({pct(best[1][0])} %).")
print("\nFlags of each configuration:\n")
for name, flags in configs:
    print(f"* `{name}`: `{flags}`")
