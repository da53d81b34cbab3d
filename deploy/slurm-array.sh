#!/usr/bin/env bash
# augsweep workers as a SLURM job array: one task per GPU, all on one shared study.
#
#   export PGPASSFILE=$HOME/.pgpass            # chmod 600; line: HOST:5432:augsweep:augsweep:PASSWORD
#   sbatch --array=0-7 deploy/slurm-array.sh experiments/default.yaml
#
# Each task runs one worker, which takes trials until the study has `trials` finished trials in total
# and exits 0. A task that dies (preemption, node failure) has its trial failed by Optuna's heartbeat on
# the other tasks, its MLflow run KILLED and its configuration retried once; resubmit the array (or the
# failed indices) to add workers back. No shared filesystem is needed: artifacts go through the MLflow server.
#SBATCH --job-name=augsweep
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=4
#SBATCH --mem=16G
#SBATCH --time=12:00:00
#SBATCH --requeue
#SBATCH --signal=TERM@60
#SBATCH --output=augsweep-%A_%a.out
set -euo pipefail

EXPERIMENT=${1:-experiments/default.yaml}
# Where the shared stores live (no password here: libpq reads it from PGPASSFILE or PGPASSWORD).
export AUGSWEEP_STORAGE=${AUGSWEEP_STORAGE:-postgresql+psycopg://augsweep@db.example.org:5432/augsweep}
export AUGSWEEP_TRACKING_URI=${AUGSWEEP_TRACKING_URI:-http://mlflow.example.org:5000}
export AUGSWEEP_HOST="${SLURMD_NODENAME:-$(hostname)}-${SLURM_ARRAY_TASK_ID:-0}"
# SLURM sets CUDA_VISIBLE_DEVICES to the GPU it allocated (--gres=gpu:1).

cd "${SLURM_SUBMIT_DIR:-.}"
# `exec` so that SLURM's SIGTERM reaches the worker, which fails its current trial cleanly (exit 143).
exec "${AUGSWEEP_PYTHON:-.venv/bin/python}" -m augsweep worker "$EXPERIMENT"
