"""What both training jobs share (train.py's language model, train_head.py's MinP+ head):
mixed precision, Ctrl-C, the metrics log and checkpoint files."""
import contextlib
import json
import math
import os
import pickle
import signal

import torch
from tqdm import tqdm

import script


def autocast(device, dtype):
    """Mixed precision for the forward pass; plain fp32 needs no context at all."""
    if dtype == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=getattr(torch, dtype))


# dense bf16 tensor-core peaks, TFLOP/s, by a part of the device name: the first that matches
PEAK_TFLOPS = {"H100 PCIe": 756, "H100 NVL": 835, "H200 NVL": 835, "H100": 989, "H200": 989, "B200": 2250,
               "A100": 312, "L40S": 362, "L40": 181, "L4": 121}


def peak_flops(device):
    """The device's dense bf16 peak in FLOP/s, for MFU; None on a CPU (its peak depends on its vector
    units and clocks), on a GPU not in PEAK_TFLOPS or on a MIG slice (a share of the GPU's peak)."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    if "MIG" in name:
        return None
    return next((tflops * 1e12 for part, tflops in PEAK_TFLOPS.items() if part in name), None)


class StopFlag:
    """Ctrl-C asks the loop to stop after the current step (and save); a second Ctrl-C kills. announce:
    say so at once (under torchrun, which logs the Ctrl-C it forwards to every rank, no rank does)."""

    def __init__(self, announce=True):
        self.requested = False
        self.announce = announce
        self.previous = signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        if self.announce:
            tqdm.write("interrupt: saving a checkpoint after this step (Ctrl-C again to quit now)")

    def restore(self):
        signal.signal(signal.SIGINT, self.previous)


def strict_json(value):
    """value with every non-finite float as None: bare NaN / Infinity are not JSON, and strict readers reject them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value


class MetricsLog:
    """A run's log in out_dir/name, one strict-JSON row per line, that stays with its checkpoint.

    A resumed run keeps the rows up to its checkpoint (row[key] <= resumed_at: it logs the later
    ones again, each once) and drops a line a kill cut short. A fresh run writes to name + ".new",
    which replaces the previous run's log at the run's first checkpoint (saved()): a run that
    fails before it saves leaves the last run's log, as it leaves its checkpoint."""

    def __init__(self, out_dir, name, key, resumed_at=None):
        self.path = os.path.join(out_dir, name)
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.path + ".new")  # a fresh run's that never saved
        self.writing = self.path if resumed_at is not None else self.path + ".new"
        if resumed_at is not None and os.path.exists(self.path):
            with open(self.path, errors="replace") as f:
                lines = f.readlines()
            kept = [line for line in lines if line.endswith("\n") and row_within(line, key, resumed_at)]
            if len(kept) < len(lines):
                script.write_text(self.path, "".join(kept))

    def write(self, row):
        line = json.dumps(strict_json(row), allow_nan=False) + "\n"
        try:
            with open(self.writing, "a") as f:
                f.write(line)
        except OSError:  # a full disk: a log the failed write left empty would only outlive the run
            with contextlib.suppress(OSError):
                if os.path.getsize(self.writing) == 0:
                    os.remove(self.writing)
            raise

    def saved(self):
        """The run's checkpoint was just written: from now on its log is the log."""
        if self.writing != self.path:
            if os.path.exists(self.writing):
                os.replace(self.writing, self.path)
            elif os.path.exists(self.path):
                os.remove(self.path)  # saved before any row: the old rows belong to no checkpoint now
            self.writing = self.path


def row_within(line, key, last):
    try:
        row = json.loads(line)
    except (json.JSONDecodeError, RecursionError):  # a line nested thousands deep is as unreadable: dropped
        return False
    return isinstance(row, dict) and isinstance(row.get(key, 0), (int, float)) and row.get(key, 0) <= last


def non_finite_tensors(state):
    """Names of the non-finite floating tensors in a (nested) state dict: what must never be saved."""
    if torch.is_tensor(state):
        return [] if not state.is_floating_point() or torch.isfinite(state).all() else [""]
    if isinstance(state, dict):
        items = state.items()
    elif isinstance(state, (list, tuple)):
        items = enumerate(state)
    else:
        return []
    return [f"{k}.{name}".rstrip(".") for k, v in items for name in non_finite_tensors(v)]


def kept_message(path):
    """What a run that stops on a NaN or a divergence leaves behind, truthfully: the checkpoint on disk
    and the step (or epoch) read back from it, which may be an earlier run's."""
    if not os.path.exists(path):
        return "no checkpoint was saved yet"
    return f"the last good checkpoint {path}{saved_at(path)} is untouched"


def saved_at(path):
    """' (step N)' or ' (epoch N)' from a checkpoint, mapped so that no weights are read; '' when it
    cannot be read (a message about another failure must not fail in turn)."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (OSError, EOFError, RuntimeError, pickle.UnpicklingError):
        return ""
    keys = [key for key in ("step", "epoch") if isinstance(saved, dict) and isinstance(saved.get(key), int)]
    return f" ({keys[0]} {saved[keys[0]]})" if keys else ""


def save_checkpoint(state, path):
    """torch.save(state) atomically, after checking that no tensor in it is NaN or inf: a checkpoint
    is only ever replaced by a good one. FloatingPointError otherwise, and the old file stays."""
    bad = non_finite_tensors(state)
    if bad:
        raise FloatingPointError(f"{len(bad)} tensor(s) to be saved hold NaN or inf ({', '.join(bad[:3])}"
                                 f"{', ...' if len(bad) > 3 else ''}): stopping; {kept_message(path)}. "
                                 f"Lower the learning rate")
    script.write_atomically(path, lambda tmp: torch.save(state, tmp))
