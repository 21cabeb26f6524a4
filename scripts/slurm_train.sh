#!/usr/bin/env bash
# Multi-node DDP training under SLURM: one torchrun per node (srun), one c10d rendezvous.
#
#   sbatch scripts/slurm_train.sh --dataroot ./datasets/horse2zebra --name h2z
#   sbatch --nodes=4 --gpus-per-node=4 scripts/slurm_train.sh --dataroot ... --name h2z
#   sbatch scripts/slurm_train.sh --dataroot ... --name h2z --continue_train    # resume latest.pth
#   NPROC_PER_NODE=2 sbatch --nodes=1 --gpus-per-node=0 scripts/slurm_train.sh ... --gpu_ids -1   # CPUs
#   salloc --nodes=2 --gpus-per-node=8   then   bash scripts/slurm_train.sh ...   # interactively
#
# CPU processes need --gpus-per-node=0: where a node has no GPUs, sbatch refuses the default
# --gpus-per-node=8 ("Invalid generic resource (gres) specification").
# Every argument goes to train.py verbatim. The #SBATCH lines below are defaults; any of them is
# overridden by the same option on the sbatch command line. Edit them for your cluster: add a
# partition / account line if it needs one, the time limit, the GPUs of a node. Submit from the
# repository root (or anywhere: relative paths in the arguments are resolved against the
# directory you submit from, which stays the working directory of train.py).
#
# - --checkpoints_dir and --dataroot must be on a file system that every node sees (only the node
#   of rank 0 writes checkpoints, but every node reads the data). The default --checkpoints_dir
#   is ./checkpoints of the submit directory.
# - --continue_train resumes from <checkpoints_dir>/<name>/latest.pth; a checkpoint saved in the
#   middle of an epoch resumes only with the same total number of processes (README: "Multi-GPU
#   and multi-node").
# - --batch_size is per process: the effective batch is --batch_size x nodes x processes per node.
#
# Environment (export before sbatch; sbatch passes the environment on):
#   NPROC_PER_NODE  processes per node (default: the GPUs SLURM gives the node: SLURM_GPUS_ON_NODE,
#                   else SLURM_GPUS_PER_NODE, else `nvidia-smi -L | wc -l`). Set it for a CPU run.
#   MASTER_PORT     the rendezvous port on the first node (default 29500)
#   RDZV_HOST       the rendezvous host (default: the first node's NodeAddr, usually its name)
#   MAX_RESTARTS    torchrun's --max_restarts: restarts of the whole group after a failure (default 0)
#   REPO_DIR        the repository (default: the one this script is in); its .venv/bin/python is
#                   used if there is one, else `python` from PATH.
#
#SBATCH --job-name=cyclegan
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --exclusive
#SBATCH --mem=0
#SBATCH --time=24:00:00
#SBATCH --output=slurm-%x-%j.out
##SBATCH --partition=gpu
##SBATCH --account=myproject
set -euo pipefail

die() {
    echo "slurm_train.sh: error: $*" >&2
    exit 1
}

[[ -n "${SLURM_JOB_ID:-}" && -n "${SLURM_JOB_NODELIST:-}" ]] ||
    die "not inside a SLURM allocation (no SLURM_JOB_ID): submit it with sbatch scripts/slurm_train.sh ARGS"

# The repository: sbatch runs a copy of this script from its spool directory, so the path it was
# submitted from comes from the job's record (Command=).
is_repo() { [[ -n "$1" && -f "$1/train.py" ]]; }
if [[ -n "${REPO_DIR:-}" ]]; then
    is_repo "$REPO_DIR" || die "REPO_DIR=$REPO_DIR has no train.py"
else
    for candidate in "$(dirname "${BASH_SOURCE[0]}")/.." \
        "$(dirname "$(scontrol show job "$SLURM_JOB_ID" -o | sed -n 's/.* Command=\([^ ]*\).*/\1/p')")/.." \
        "${SLURM_SUBMIT_DIR:-}"; do
        if is_repo "$candidate"; then
            REPO_DIR="$(cd "$candidate" && pwd)"
            break
        fi
    done
    is_repo "${REPO_DIR:-}" || die "cannot find the repository (train.py): set REPO_DIR"
fi
if [[ -x "$REPO_DIR/.venv/bin/python" ]]; then PYTHON="$REPO_DIR/.venv/bin/python"; else PYTHON=python; fi

gpus() { # the GPUs of this node: SLURM's count ("8" or "a100:8"), else nvidia-smi's
    local count="${SLURM_GPUS_ON_NODE:-${SLURM_GPUS_PER_NODE:-}}"
    count="${count##*:}"
    if [[ -z "$count" ]] && command -v nvidia-smi >/dev/null; then
        count="$(nvidia-smi -L 2>/dev/null | wc -l)"
    fi
    echo "${count:-0}"
}
NPROC="${NPROC_PER_NODE:-$(gpus)}"
[[ "$NPROC" =~ ^[1-9][0-9]*$ ]] ||
    die "no GPUs on this node (found '$NPROC'): request some (--gpus-per-node) or set NPROC_PER_NODE (with --gpu_ids -1 for CPU processes)"

# The rendezvous: the first node of the allocation, at the address SLURM itself reaches it by
# (its NodeAddr, which is its name unless slurm.conf says otherwise).
HEAD_NODE="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"
HEAD_ADDR="$(scontrol show node "$HEAD_NODE" -o 2>/dev/null | sed -n 's/.* NodeAddr=\([^ ]*\).*/\1/p' || true)"
HEAD_ADDR="${RDZV_HOST:-${HEAD_ADDR:-$HEAD_NODE}}"
PORT="${MASTER_PORT:-29500}"
NNODES="${SLURM_NNODES:-1}"
CPUS="${SLURM_CPUS_PER_TASK:-${SLURM_CPUS_ON_NODE:-1}}"
export PYTHONUNBUFFERED=1

echo "slurm_train.sh: job $SLURM_JOB_ID: $NNODES node(s) x $NPROC process(es), rendezvous $HEAD_ADDR:$PORT ($HEAD_NODE), python $PYTHON"
# One task per node, with all of the node's CPUs (a step gets one CPU per task unless told);
# --kill-on-bad-exit ends every node's torchrun when one fails.
srun --nodes="$NNODES" --ntasks="$NNODES" --ntasks-per-node=1 --cpus-per-task="$CPUS" --kill-on-bad-exit=1 \
    "$PYTHON" -m torch.distributed.run \
    --nnodes "$NNODES" \
    --nproc_per_node "$NPROC" \
    --rdzv_backend c10d \
    --rdzv_endpoint "$HEAD_ADDR:$PORT" \
    --rdzv_id "$SLURM_JOB_ID" \
    --max_restarts "${MAX_RESTARTS:-0}" \
    "$REPO_DIR/train.py" "$@"
