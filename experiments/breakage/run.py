"""Issue #14's breakage demos: each strengthened test fails when its subject is broken.

For each case: apply one deliberate breakage (a text substitution in the source) in a scratch
git worktree, run the test there (it must fail), restore, run it again (it must pass). The
worktree's src/ comes first on PYTHONPATH, so the editable install of the main tree is not
used. Prints one line per case and writes breakage.json beside this script.

    python experiments/breakage/run.py [--only NAME]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WT = Path("/tmp/dotrec-breakage")

# name: (test node id, file, old text, breaking replacement, what the breakage does)
CASES = {
    "eval negatives not uniform": (
        "tests/data/test_splits.py::test_negatives_uniform_over_the_complement",
        "src/dotrec/data/negatives.py",
        "r.choice(free[u], size=n_negatives, replace=False)",
        "r.choice(free[u] - 1, size=n_negatives, replace=False)",
        "the last free item is never drawn",
    ),
    "pairs clumped on half the users": (
        "tests/approx/test_data.py::test_sample_pairs_sparse_is_uniform_and_distinct",
        "src/dotrec/approx/data.py",
        "generator.integers(0, total, size=",
        "generator.integers(0, total // 2, size=",
        "pairs drawn from the first half of the users only",
    ),
    "scores in float64": (
        "tests/models/test_contract.py::test_score_shape_and_dtype",
        "src/dotrec/models/base.py",
        "return (out + self.user_bias[u] + self.item_bias[i] + self.global_bias)"
        ".astype(np.float32)",
        "return (out + self.user_bias[u] + self.item_bias[i] + self.global_bias)"
        ".astype(np.float64)",
        "dot-product scores come back as float64",
    ),
    "Popularity scores random": (
        "tests/models/test_contract.py::test_popularity_is_not_a_learner",
        "src/dotrec/models/popularity.py",
        "return self.item_counts[i]",
        "return np.random.default_rng(0).random(len(i)).astype(np.float32)",
        "Popularity's scores replaced by random numbers",
    ),
    "requests reload the model": (
        "tests/serve/test_app.py::test_state_is_one_shared_object",
        "src/dotrec/serve/app.py",
        "        rec: Recommender = request.app.state.serving.recommender\n"
        "        items, scores = rec.recommend(user_id, k, exclude_seen=exclude_seen)",
        "        s = request.app.state.serving\n"
        "        rec = load_state(s.model_dir, None).recommender\n"
        "        items, scores = rec.recommend(user_id, k, exclude_seen=exclude_seen)",
        "each recommendation request loads the model directory again",
    ),
    "index recall not measured": (
        "tests/retrieval/test_index.py::test_build_reports_recall_and_rejects_learned_models",
        "src/dotrec/retrieval/index.py",
        'info[f"recall@{RECALL_K}"] = recall_at_k(index, m.user_factors[np.sort(users)])',
        'info[f"recall@{RECALL_K}"] = 1.0',
        "build_index reports recall 1.0 without measuring it",
    ),
    "CLI index recall not measured": (
        "tests/serve/test_cli.py::test_index_build_and_recommend",
        "src/dotrec/retrieval/index.py",
        'info[f"recall@{RECALL_K}"] = recall_at_k(index, m.user_factors[np.sort(users)])',
        'info[f"recall@{RECALL_K}"] = 1.0',
        "the index build reports recall 1.0 without measuring it",
    ),
    "bench recall against itself": (
        "tests/retrieval/test_bench.py::test_small_bench_run",
        "src/dotrec/bench/serving.py",
        "len(np.intersect1d(f[f >= 0], t)) / k for f, t in zip(found, truth)",
        "len(np.intersect1d(f[f >= 0], t)) / (2 * k) for f, t in zip(found, truth)",
        "the serving bench's recall counts each hit half",
    ),
    "GMF scores are Popularity's": (
        "tests/models/test_ncf.py::test_gmf_band_on_ml_1m_u3k",
        "src/dotrec/models/ncf.py",
        '                t["gmf_user"] = w["gmf.user_embedding"]\n',
        '                t["gmf_user"] = np.ones_like(w["gmf.user_embedding"])\n',
        "every user scored by the same vector (an item-only, popularity-like ranking)",
    ),
    "MF ignores the user": (
        "tests/models/test_mf.py::test_band_on_ml_1m_u3k",
        "src/dotrec/models/base.py",
        "dots = np.matmul(self.item_factors[i], self.user_factors[u][:, :, None])[..., 0]",
        "dots = np.zeros(i.shape, np.float32)",
        "MF ranks candidates by item bias alone",
    ),
    "NeuMF drops its pretraining": (
        "tests/models/test_ncf.py::test_cli_trains_neumf_from_pretrained_gmf_and_mlp",
        "src/dotrec/models/ncf.py",
        "        self._pretrained = (gmf, mlp)",
        "        self._pretrained = None",
        "set_pretrained keeps nothing: NeuMF trains from scratch for its 1 epoch",
    ),
    "study rows not the saved models'": (
        "tests/study/test_study_ml1m.py::test_ials_cell_on_ml1m_reaches_the_published_band",
        "src/dotrec/study/driver.py",
        "        seed = config.seed + i\n",
        "        seed = config.seed + i + 1\n",
        "the study retrains with seeds shifted by one (files no longer match seed names)",
    ),
}


def run(test: str, env: dict[str, str]) -> bool:
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", test],
        cwd=WT,
        env=env,
        capture_output=True,
        text=True,
    )
    return r.returncode == 0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default=None)
    args = ap.parse_args()
    subprocess.run(["git", "worktree", "remove", "--force", str(WT)], cwd=ROOT, capture_output=True)
    subprocess.run(
        ["git", "worktree", "add", "-q", "--detach", str(WT), "HEAD"], cwd=ROOT, check=True
    )
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=WT, capture_output=True, text=True
    ).stdout.strip()
    env = {**os.environ, "PYTHONPATH": str(WT / "src") + os.pathsep + str(WT)}
    env.setdefault("DOTREC_DATA_DIR", str(ROOT.parent / "shared" / "data"))
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    results: list[dict[str, str | bool]] = []
    for name, (test, path, old, new, what) in CASES.items():
        if args.only and args.only not in name:
            continue
        f = WT / path
        original = f.read_text()
        if original.count(old) != 1:
            print(f"{name}: the breakage text is not found once in {path}", flush=True)
            results.append({"case": name, "error": "breakage text not found"})
            continue
        f.write_text(original.replace(old, new))
        broken = run(test, env)
        f.write_text(original)
        fixed = run(test, env)
        ok = (not broken) and fixed
        line = (
            f"{'ok ' if ok else 'BAD'} {test}: broken ({what}) -> "
            f"{'passed' if broken else 'FAILED'}; restored -> {'passed' if fixed else 'FAILED'}"
        )
        print(line, flush=True)
        results.append(
            {
                "case": name,
                "test": test,
                "breakage": what,
                "broken_passed": broken,
                "restored_passed": fixed,
            }
        )
    out = Path(__file__).with_name("breakage.json")
    out.write_text(
        json.dumps(
            {"commit": head, "results": results},
            indent=1,
        )
    )
    subprocess.run(["git", "worktree", "remove", "--force", str(WT)], cwd=ROOT, capture_output=True)


if __name__ == "__main__":
    main()
