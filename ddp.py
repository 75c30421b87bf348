"""Running under torchrun: one process per GPU (or CPU worker), sums over the ranks, and the one line for a
collective that failed because another rank is gone."""

import os
import re

import torch
import torch.distributed as dist

from runtime import kept_message


def setup_ddp(device):
    """Under torchrun (RANK is set): one process per GPU (nccl), or per CPU worker (gloo).
    Returns (rank, world_size, device); (0, 1, device) when not distributed."""
    if "RANK" not in os.environ:
        return 0, 1, device
    dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    if device.startswith("cuda"):
        device = f"cuda:{os.environ['LOCAL_RANK']}"
        torch.cuda.set_device(device)
    return dist.get_rank(), dist.get_world_size(), device


def sum_over_ranks(values, world_size, device):
    """Sum a few floats over the ranks, so every rank takes the same stop decisions."""
    if world_size == 1:
        return values
    summed = torch.tensor(values, dtype=torch.float64, device=device)  # nccl reduces on the GPU
    dist.all_reduce(summed)
    return summed.tolist()


PEER_GONE = re.compile(r"connection (reset|closed)|closed by peer|broken pipe", re.IGNORECASE)


def peer_gone(error, ckpt_path):
    """Under torchrun, the one-line ConnectionError for a collective that failed because another rank
    is gone (killed, or stopped by an error it reported itself): no bug of this rank's, so not gloo's
    traceback. None for any other error."""
    found = PEER_GONE.search(str(error)) if int(os.environ.get("WORLD_SIZE", "1")) > 1 else None
    if found is None:
        return None
    then = "continue with --resume" if os.path.exists(ckpt_path) else "start it again"
    return ConnectionError(f"another process of this run stopped ({found.group()}), so this one stops too; "
                           f"{kept_message(ckpt_path)}: {then}")
