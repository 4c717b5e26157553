"""PPO's checkpoints: everything a run needs to continue exactly where it stopped (`--resume`).

A checkpoint folder holds the actor (a transformers folder with its tokenizer and the run's settings,
loadable by `corl-gym eval`), the critic, both optimisers, the iteration and the RNG states. It is
written to a temporary folder, then swapped in, so an interrupted save leaves the previous one."""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from corl_gym.agents.config import TRAIN_CONFIG
from corl_gym.agents.ppo.distributed import full_state_dict, load_optimizer_state, optimizer_state


def save_checkpoint(folder: Path, cfg: Any, iteration: int, actor: Any, critic: Any, actor_opt: Any, critic_opt: Any,
                    tokenizer: Any, rank: int) -> None:
    """Gather the (possibly sharded) state on every rank, then write it from rank 0."""
    actor_state, critic_state = full_state_dict(actor), full_state_dict(critic)  # collectives: every rank
    optim_states = optimizer_state(actor, actor_opt), optimizer_state(critic, critic_opt)
    if rank != 0:
        return
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model = actor.module if hasattr(actor, "module") else actor
    model.save_pretrained(tmp / "actor", state_dict=actor_state)
    tokenizer.save_pretrained(tmp / "actor")
    cfg.save(tmp / "actor" / TRAIN_CONFIG)
    torch.save(critic_state, tmp / "critic.pt")
    torch.save({"actor": optim_states[0], "critic": optim_states[1]}, tmp / "optim.pt")
    torch.save({"iteration": iteration, "rng": _rng_state()}, tmp / "state.pt")
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def load_checkpoint(folder: Path, actor: Any, critic: Any, actor_opt: Any, critic_opt: Any) -> int:
    """Restore the optimisers and the RNG states (the models are loaded from the folder by the caller);
    returns the number of iterations done."""
    optim = torch.load(folder / "optim.pt", weights_only=False)
    load_optimizer_state(actor, actor_opt, optim["actor"])
    load_optimizer_state(critic, critic_opt, optim["critic"])
    state = torch.load(folder / "state.pt", weights_only=False)
    _set_rng_state(state["rng"])
    return int(state["iteration"])


def _rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
