#!/usr/bin/env bash
# One device call that measures and checks what a GPU session owes issue 29, in about 8 minutes:
#   run (device tool): bash bench/gpu_session.sh        with carry [".whl"] (see /work/.library/device/README.md)
# 1. the throughput table (env only, network only, whole trainer; K = 1 to 512): bench/gpu_throughput.py;
# 2. resume on CUDA: the kill-and-resume tests with deterministic algorithms, so that a
#    nondeterministic kernel fails by name instead of flaking (the routing_gate_replay flake).
# Everything it prints lands in $OUT/gpu_session.log too.
set -u
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH="/tmp/site:${PYTHONPATH:-}" || exit 1
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}"
log="${OUT:-/tmp}/gpu_session.log"
{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
    timeout 330 python3 bench/gpu_throughput.py --device cuda
    echo "--- resume on CUDA, deterministic algorithms"
    OVERSIGHT_DETERMINISTIC=1 CUBLAS_WORKSPACE_CONFIG=:4096:8 timeout 150 python3 -m pytest -q -x \
        tests/test_agents.py -k "resumes_from_its_checkpoint" -p no:cacheprovider
} 2>&1 | tee "$log"
