#!/usr/bin/env bash
# The GPU-machine run behind BENCHMARKS.md §5-§8: one H200 and 16 CPU cores, about 8 minutes.
#   OUT=/some/dir BUDGET=420 REC_CELLS=madgan-sharp,madgan-decay bash benchmarks/device_run.sh
# Runs at once, each under its own time limit (a bench resumes: rerun to finish what was cut):
#   - CPU (8 workers): the rest of the mixture matrix, fast protocol, 3 seeds, 5k steps;
#   - GPU, first alone: benchmarks/gpu_check.py (overhead, torchrun DDP, throughput, memory, unrolled vs k);
#   - GPU, then together: the recipe cells on the mixtures (10k steps, 3 seeds, then up to 10), Stacked MNIST (dcgan-small,
#     3 seeds) and the PatchGAN receptive-field comparison.
# Run it without a pipe (`| tail` waits for orphaned workers): the device tool returns the output's tail.
# Everything comes back as $OUT/all.tgz (results.jsonl and report.md of each bench, logs, GPU check).
set -u
OUT=${OUT:?set OUT}; BUDGET=${BUDGET:-420}; REC_CELLS=${REC_CELLS:-recommended}
REC_SEEDS=${REC_SEEDS:-3}; REC_STEPS=${REC_STEPS:-10000}; SM_STEPS=${SM_STEPS:-2000}
export PYTHONPATH=$PWD:/tmp/site PYTHONUNBUFFERED=1 GANTRICKS_CACHE=$PWD/.devcache OMP_NUM_THREADS=1
start=$(date +%s); left() { echo $(( BUDGET - ($(date +%s) - start) )); }
L=/tmp/devlogs; mkdir -p $L runs
if [ -d .whl ]; then python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl; fi
{ nvidia-smi; nproc; python3 -c "import torch; print(torch.__version__, torch.cuda.get_device_name())"; } > $L/env.txt 2>&1

MATRIX=${MATRIX_CELLS:-unrolled,minibatch-discrimination,lookahead,n-critic-5,wgan-gp-paper,madgan,mrgan,mdgan,ebgan,recommended,ttur,minibatch-stddev,loss-minimax,loss-hinge,loss-least-squares,loss-wasserstein,dragan-paper}
mkdir -p runs/dev-fast && cp benchmarks/results/fast-5000.jsonl runs/dev-fast/results.jsonl
timeout -k 10 $((BUDGET - 15)) python3 -m gantricks bench --suite mixtures --protocol fast --seeds 3 --steps 5000 \
    --workers 8 --only $MATRIX --out runs/dev-fast > $L/fast.log 2>&1 &

timeout -k 10 150 python3 benchmarks/gpu_check.py --out $L/gpu > $L/gpu.log 2>&1

(for seeds in $REC_SEEDS 10; do   # every candidate on a few seeds first, then on to 10 while time lasts
    timeout -k 10 $(( $(left) - 10 )) python3 -m gantricks bench --suite mixtures --protocol fast --only $REC_CELLS \
        --seeds $seeds --steps $REC_STEPS --device cuda --workers 6 --out runs/dev-rec; done > $L/rec.log 2>&1) &
timeout -k 10 $(( $(left) - 10 )) python3 -m gantricks bench --suite stacked-mnist \
    --only baseline,pacgan,madgan,minibatch-discrimination,unrolled --seeds 3 --steps $SM_STEPS --device cuda \
    --workers 2 --out runs/dev-smnist > $L/smnist.log 2>&1 &
timeout -k 10 $(( $(left) - 10 )) python3 benchmarks/patchgan_rf.py --variants 1 16 full l1 --steps 2000 --seeds 0 1 2 \
    --device cuda --out $L/rf.jsonl > $L/rf.log 2>&1 &
wait
pkill -f "gantricks bench" ; pkill -f multiprocessing   # workers a timeout orphaned
for b in dev-fast dev-rec dev-smnist; do mkdir -p $L/$b; cp runs/$b/results.jsonl runs/$b/report.md $L/$b/ 2>/dev/null; done
for f in $L/*.log; do tail -c 20000 $f > $f.tail; done
# only the small files: the whole folder (DDP run folders) is over the 16 MB a file may bring back
(cd $L && tar czf $OUT/all.tgz env.txt *.tail rf.jsonl gpu/results.json gpu/results.md dev-*/*)
echo "done in $(( $(date +%s) - start )) s"; ls -la $L
