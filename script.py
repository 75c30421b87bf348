"""Script plumbing that is not about data: files written atomically, output directories, and a script's main
(run_script: bad input, a failed write or memory running out end in one `error: ...` line)."""

import os
import re
import sys

import torch  # for torch.OutOfMemoryError, which a failed write passes on and run_script reports as out of memory


def write_atomically(path, write):
    """write(tmp_path), flush it to disk, then rename it over path: an interrupted run never leaves
    a truncated file behind, nor destroys the last good one (used for every file the project writes).
    A failed write removes its temp file, so a full disk is not left fuller; OSError says what failed."""
    tmp = path + ".tmp"
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(e, Exception) and not isinstance(e, (ValueError, torch.OutOfMemoryError)):  # bad input stays
            full = disk_full(e, path)  # any other Exception only then (tokenizers raises a plain one)
            if full or isinstance(e, (OSError, RuntimeError)):
                reason = "the disk is full" if full else f"{type(e).__name__}: {str(e).splitlines()[0]}"
                raise OSError(f"could not write {path} ({reason}); the previous file, if any, is untouched: "
                              f"free some space or choose another --out_dir") from e
        raise


def write_text(path, text):
    def write(tmp):
        with open(tmp, "w") as f:
            f.write(text)
    write_atomically(path, write)


def remove_debris(out_dir, names):
    """Remove the files of out_dir a run killed while saving leaves behind, saying so: a temp file
    never renamed, a fresh run's log never adopted (a kill in the first save leaves both and no
    checkpoint). Only the file names this run would write are touched."""
    found = [name for name in names if os.path.isfile(os.path.join(out_dir, name))]
    for name in found:
        os.remove(os.path.join(out_dir, name))
    if found:
        print(f"removed {', '.join(found)} from {out_dir}: left by a run killed while saving")


def disk_full(error, path):
    """Whether a failed write ran out of space (torch.save says only 'unexpected pos'; tokenizers says
    'No space left on device (os error 28)' in a plain Exception)."""
    import errno
    import shutil

    if getattr(error, "errno", None) == errno.ENOSPC or re.search(r"no space left|os error 28", str(error), re.I):
        return True
    try:
        return shutil.disk_usage(os.path.dirname(os.path.abspath(path))).free < 1 << 20
    except OSError:
        return False


def make_out_dir(out_dir):
    """Create out_dir (and its parents) or say in one line why it cannot be."""
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ValueError(f"--out_dir {out_dir} is a file: pass a directory")
    try:
        os.makedirs(out_dir, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ValueError(f"--out_dir {out_dir} lies under a file: pass a directory path") from None
    except PermissionError:
        raise ValueError(f"--out_dir {out_dir} cannot be created (permission denied): choose another") from None
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise ValueError(f"--out_dir {out_dir} is not writable: choose another or fix its permissions")


class Interrupted(Exception):
    """A run that Ctrl-C stopped after a clean save; its message, if any, is the one line to print."""


def run_script(run, argv=None):
    """A script's main: run(argv), where bad input, a diverged run, a failed write or memory running out
    end in one `error: ...` line and exit status 1, not a traceback (library code raises; only this exits).
    Ctrl-C ends in exit status 130, as a shell reports a program SIGINT ended: after one line (or none)
    once a run has saved (Interrupted), else after `interrupted`, so `train.py && ...` stops there."""
    try:
        return run(argv)
    except Interrupted as e:
        if str(e):
            print(e, file=sys.stderr)
        raise SystemExit(130) from None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    except (ValueError, FloatingPointError, OSError) as e:
        raise SystemExit(f"error: {e}") from None
    except (MemoryError, RuntimeError) as e:  # torch's CPU allocator raises a RuntimeError that says so
        if not isinstance(e, (MemoryError, torch.OutOfMemoryError)) and "can't allocate memory" not in str(e):
            raise  # any other RuntimeError is a bug: its traceback is wanted
        raise SystemExit("error: out of memory: pass smaller sizes (--batch_size, --num_samples, the model's "
                         "flags)") from None
