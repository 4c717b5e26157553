"""The PPO learner's GPU benchmark, prepared for one H200: under 9 minutes, each stage
writes its JSON before the next starts, so a run cut short still leaves every finished stage.

    python -m corl_gym.benchmarks.ppo_gpu --out benchmarks/results/ppo_gpu          # the H200 run
    python -m corl_gym.benchmarks.ppo_gpu --dry-run --out runs/ppo_gpu_dry          # CPU, toy sizes: the code path

Models are Qwen2.5-0.5B- and 1.5B-shaped (`Qwen2Config` with their published shapes), random weights,
bf16; nothing is downloaded. Stages:

1. `env.json`: torch, transformers, device.
2. `rollout.json` (0.5B) and, last, `rollout_1.5b.json` (batch 256): decode throughput (new tokens/s) on
   the same prompts (256 random prompt tokens, 256 new, EOS ignored, greedy) at batch 256 and 1024: our
   `HFGenerator` (dynamic cache; static cache with a compiled decode step) vs transformers `generate` with
   its default dynamic cache and with `cache_implementation="static"` (which compiles). Each
   configuration runs once to warm up (and compile), then once timed.
3. `update.json`: actor update tokens/s and MFU (6 N tokens / time / 790e12) of our PPO actor step
   (`corl_gym.agents.ppo.train.actor_step`: forward, clipped policy loss over controller tokens,
   backward, clip, fused AdamW) vs a plain transformers causal-LM training step (labels = inputs, same
   fused AdamW), bf16, on the same shape: 8 x 2048 tokens (0.5B) and 4 x 2048 (1.5B).
4. `e2e.json`: one end-to-end PPO iteration (rollout through the vector env, scoring, update) of the
   0.5B shape with a locally trained tokenizer, and its timing breakdown (veRL-style names).

A stage that would start past `--budget-s` is recorded as skipped instead of run.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

PEAK_FLOPS = 790e12
SHAPES = {  # Qwen2.5-0.5B / 1.5B (config.json on the hub), and a toy for --dry-run
    "0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                 num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True),
    "1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                 num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True),
    "toy": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, vocab_size=4096, tie_word_embeddings=True),
}


class Bench:
    def __init__(self, out: Path, budget_s: float, dry: bool):
        import torch

        self.torch, self.out, self.budget_s, self.dry = torch, out, budget_s, dry
        self.device = "cuda" if torch.cuda.is_available() and not dry else "cpu"
        self.dtype = torch.bfloat16 if self.device == "cuda" else torch.float32
        self.began = time.perf_counter()
        out.mkdir(parents=True, exist_ok=True)

    def left_s(self) -> float:
        return self.budget_s - (time.perf_counter() - self.began)

    def write(self, name: str, data: Any) -> None:
        (self.out / f"{name}.json").write_text(json.dumps(data, indent=2))

    def sync(self) -> None:
        if self.device == "cuda":
            self.torch.cuda.synchronize()

    def model(self, shape: str):
        from transformers import Qwen2Config, Qwen2ForCausalLM

        config = Qwen2Config(**SHAPES[shape], max_position_embeddings=4096, rms_norm_eps=1e-6)
        config._attn_implementation = "sdpa"
        self.torch.manual_seed(0)
        with self.torch.device(self.device):
            model = Qwen2ForCausalLM(config)
        return model.to(self.dtype)

    def timed(self, fn: Callable[[], Any]) -> float:
        self.sync()
        start = time.perf_counter()
        fn()
        self.sync()
        return time.perf_counter() - start


class _VocabTokenizer:
    """What `HFGenerator` needs of a tokenizer, for random-id prompts: no stop strings are used."""

    def __init__(self, vocab: int):
        self.vocab, self.eos_token_id, self.pad_token_id = vocab, 0, 0

    def __len__(self) -> int:
        return self.vocab

    def decode(self, ids, skip_special_tokens=False) -> str:
        return ""


def stage_env(b: Bench) -> None:
    import transformers

    torch = b.torch
    info = {"torch": torch.__version__, "transformers": transformers.__version__, "python": platform.python_version(),
            "device": b.device, "dry_run": b.dry}
    if b.device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
    b.write("env", info)


GENERATORS = ("ours_dynamic", "ours_static_compiled", "hf_generate_dynamic", "hf_generate_static")


def stage_rollout(b: Bench, shapes: list[str], batches: list[int], prompt_len: int, new_tokens: int,
                  name: str = "rollout") -> None:
    results: list[dict[str, Any]] = []
    for shape in shapes:
        model = b.model(shape).eval()
        for batch in batches:
            _rollout_batch(b, model, shape, batch, prompt_len, new_tokens, results, name)
        del model
        _free(b)
    b.write(name, results)


def _rollout_batch(b: Bench, model: Any, shape: str, batch: int, prompt_len: int, new_tokens: int,
                   results: list[dict[str, Any]], name: str) -> None:
    """Every generator on the same prompts; each entry is written as it finishes."""
    torch, vocab = b.torch, model.config.vocab_size
    prompts = torch.randint(100, vocab - 100, (batch, prompt_len), generator=torch.Generator().manual_seed(batch))
    for generator in GENERATORS:
        entry: dict[str, Any] = {"shape": shape, "batch": batch, "generator": generator}
        if b.left_s() < 60:
            results.append({**entry, "skipped": "time budget"})
            continue
        entry.update(prompt_tokens=prompt_len, new_tokens=new_tokens)
        try:
            run = _generation(b, generator, model, prompts, new_tokens)
            entry["warmup_s"] = b.timed(run)  # first call: allocation, autotuning and compilation
            entry["seconds"] = b.timed(run)
            entry["tokens_per_s"] = batch * new_tokens / entry["seconds"]
        except Exception as exc:  # noqa: BLE001 - one failed configuration must not lose the others
            entry["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
            _free(b)
        results.append(entry)
        b.write(name, results)


def _generation(b: Bench, generator: str, model: Any, prompts: Any, new_tokens: int) -> Callable[[], Any]:
    """A call that writes `new_tokens` after each prompt, greedy, with the named generator."""
    from corl_gym.agents.llm import HFGenerator

    if generator.startswith("hf_generate"):
        return _hf_generate(b, model, prompts, new_tokens, "static" if generator.endswith("static") else None)
    static = generator == "ours_static_compiled"
    gen = HFGenerator(model, _VocabTokenizer(model.config.vocab_size), (), cache="static" if static else "dynamic",
                      compile=static and b.device == "cuda", ignore_eos=True)
    return lambda: gen.generate(prompts.tolist(), max_new_tokens=new_tokens, temperature=0.0)


def _hf_generate(b: Bench, model, prompts, new_tokens: int, cache: str | None):
    ids = prompts.to(b.device)
    mask = b.torch.ones_like(ids)
    extra = {"cache_implementation": cache} if cache else {}

    def run():
        with b.torch.no_grad():
            model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                           do_sample=False, pad_token_id=0, **extra)
    return run


def stage_update(b: Bench, plan: list[tuple[str, int, int]], steps: int) -> None:
    results: list[dict[str, Any]] = []
    for shape, rows, length in plan:
        if b.left_s() < 60:
            results.append({"shape": shape, "skipped": "time budget"})
            continue
        results.append(_update_shape(b, shape, rows, length, steps, results))
        b.write("update", results)
        _free(b)


def _update_shape(b: Bench, shape: str, rows: int, length: int, steps: int,
                  done: list[dict[str, Any]]) -> dict[str, Any]:
    """A plain causal-LM training step and our PPO actor step, on the same shape; written as each finishes."""
    from corl_gym.agents.ppo.config import PPOConfig
    from corl_gym.agents.ppo.train import actor_step

    torch = b.torch
    model = b.model(shape).train()
    n_params = sum(p.numel() for p in model.parameters())
    ids = torch.randint(100, model.config.vocab_size - 100, (rows, length), device=b.device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6, **({"fused": True} if b.device == "cuda" else {}))
    mb = _ppo_minibatch(b, ids)
    cfg = PPOConfig(clip=0.2, ent_coef=0.0, max_grad_norm=1.0)
    candidates = {"hf_plain_step": lambda: _plain_step(model, opt, ids),
                  "ours_ppo_actor_step": lambda: actor_step(cfg, model, opt, mb, mb["mask"].sum(), {})}
    entry: dict[str, Any] = {"shape": shape, "params": n_params, "rows": rows, "length": length}
    for name, step in candidates.items():
        entry[name] = _timed_steps(b, step, steps, rows * length, n_params, opt)
        b.write("update", [*done, entry])
    ours, plain = entry["ours_ppo_actor_step"], entry["hf_plain_step"]
    if "tokens_per_s" in ours and "tokens_per_s" in plain:
        entry["ratio_ours_vs_plain"] = ours["tokens_per_s"] / plain["tokens_per_s"]
    return entry


def _plain_step(model: Any, opt: Any, ids: Any) -> None:
    loss = model(input_ids=ids, labels=ids, use_cache=False).loss
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def _ppo_minibatch(b: Bench, ids: Any) -> dict[str, Any]:
    """A PPO minibatch of `ids`' shape: prompt | turn | expert block | turn, half of it controller tokens."""
    torch, (rows, length) = b.torch, ids.shape
    mask = torch.zeros(rows, length, device=b.device)
    mask[:, length // 4 : length // 2] = 1
    mask[:, 3 * length // 4 :] = 1
    return {"ids": ids, "attention_mask": torch.ones_like(ids), "mask": mask[:, 1:],
            "old_logprobs": torch.full((rows, length - 1), -2.0, device=b.device),
            "advantages": torch.randn(rows, length - 1, device=b.device) * mask[:, 1:]}


def _timed_steps(b: Bench, step: Callable[[], Any], steps: int, tokens: int, n_params: int, opt: Any) -> dict[str, Any]:
    """Seconds per step (after a warm-up step), tokens per second and MFU; or the error that stopped it."""
    try:
        b.timed(step)  # warm-up
        seconds = b.timed(lambda: [step() for _ in range(steps)]) / steps
        return {"seconds": seconds, "tokens_per_s": tokens / seconds,
                "mfu": 6 * n_params * tokens / seconds / PEAK_FLOPS}
    except Exception as exc:  # noqa: BLE001 - e.g. out of memory: record it, keep going
        opt.zero_grad(set_to_none=True)
        _free(b)
        return {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}


def stage_e2e(b: Bench, shape: str, num_envs: int, max_new_tokens: int) -> None:
    from corl_gym.agents.ppo.config import PPOConfig
    from corl_gym.agents.ppo.logger import read_metrics
    from corl_gym.agents.ppo.train import train
    from corl_gym.agents.tiny import env_corpus, train_tokenizer
    from corl_gym.experts import load_pool
    from corl_gym.splits import select_problems

    if b.left_s() < 90:
        b.write("e2e", {"skipped": "time budget"})
        return
    folder = Path(tempfile.mkdtemp(prefix="ppo_gpu_"))
    pool = load_pool("sim-paper")
    tokenizer = train_tokenizer(env_corpus(pool, select_problems("synthetic", "train")[:2000]), folder / "model")
    model = b.model(shape)
    model.save_pretrained(folder / "model")
    del model
    _free(b)
    cfg = PPOConfig(model=str(folder / "model"), out=str(folder / "run"), device=b.device, iterations=1,
                    num_envs=num_envs, max_new_tokens=max_new_tokens, max_turns=2, num_minibatches=4, progress=False,
                    tensorboard=False)
    try:
        seconds = b.timed(lambda: train(cfg))
    except Exception as exc:  # noqa: BLE001
        b.write("e2e", {"shape": shape, "error": f"{type(exc).__name__}: {str(exc)[:500]}"})
        return
    metrics = read_metrics(folder / "run")[-1]
    b.write("e2e", {"shape": shape, "tokenizer_vocab": len(tokenizer), "num_envs": num_envs,
                    "max_new_tokens": max_new_tokens, "wall_s_including_model_load": seconds,
                    "metrics": {k: v for k, v in metrics.items()
                                if k.split("/")[0] in ("timing_s", "perf", "response_length", "env")}})


def _free(b: Bench) -> None:
    import gc

    gc.collect()
    if b.device == "cuda":
        b.torch.cuda.empty_cache()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="benchmarks/results/ppo_gpu", help="folder for the stage JSON files")
    parser.add_argument("--dry-run", action="store_true", help="CPU, toy shapes and sizes: proves the code path")
    parser.add_argument("--budget-s", type=float, default=530.0, help="skip stages that would start after this")
    parser.add_argument("--stages", default="env,rollout,update,e2e")
    args = parser.parse_args(argv)
    b = Bench(Path(args.out), args.budget_s, args.dry_run)
    stages = args.stages.split(",")
    if "env" in stages:
        stage_env(b)
    if args.dry_run:
        # e2e: 16 new tokens per turn, the least that holds a call to every expert
        plan = dict(shapes=["toy"], batches=[4, 8], prompt_len=16, new_tokens=8, update=[("toy", 2, 64)],
                    e2e=("toy", 2, 16))
    else:
        # 1.5B rollouts run last (batch 256 only): the update and e2e stages matter more within 9 minutes
        plan = dict(shapes=["0.5b"], batches=[256, 1024], prompt_len=256, new_tokens=256,
                    update=[("0.5b", 8, 2048), ("1.5b", 4, 2048)], e2e=("0.5b", 128, 256))
    if "rollout" in stages:
        stage_rollout(b, plan["shapes"], plan["batches"], plan["prompt_len"], plan["new_tokens"])
    if "update" in stages:
        stage_update(b, plan["update"], steps=2 if args.dry_run else 5)
    if "e2e" in stages:
        stage_e2e(b, *plan["e2e"])
    if "rollout" in stages and not args.dry_run:
        stage_rollout(b, ["1.5b"], [256], plan["prompt_len"], plan["new_tokens"], name="rollout_1.5b")
    print(f"wrote {b.out}/*.json in {time.perf_counter() - b.began:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
