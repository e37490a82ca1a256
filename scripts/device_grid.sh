#!/usr/bin/env bash
# Train missing runs of a grid on a borrowed GPU machine for a fixed time, then pack every run
# that finished into $OUT/results.tar.gz. Run it there from the repository root (the working
# tree travels with its committed results/, so stored runs are skipped):
#
#   SEQNB_GIT_COMMIT=<commit of this tree> bash scripts/device_grid.sh MINUTES GRID-ARGS...
#   e.g. ... 8 --chapter embedding_frequency --datasets Amazon2014Beauty_550_LOU \
#            --seeds 1 2 --device cuda --workers 8
#
# The data root is $SEQNB_DATA (default: .device-data in the repository, a copy of the data
# files to carry along). The grid stops after MINUTES; its workers stop with it, and runs in
# progress are lost (their checkpoints stay behind on that machine). A run counts as finished
# once its JSON file is written (the store writes it last). Back here:
#   tar --skip-old-files -xzf <files_at>/results.tar.gz -C results/runs
# (a run stored here meanwhile, say by a CPU grid, is kept: one run id, one result).
set -euo pipefail
if [[ $# -lt 2 || ! $1 =~ ^[0-9]+$ ]]; then
    echo "usage: bash scripts/device_grid.sh MINUTES GRID-ARGS..." >&2
    exit 2
fi
minutes=$1
shift
: "${OUT:?OUT must name the folder that comes back}"
export SEQNB_DATA=${SEQNB_DATA:-$PWD/.device-data} PYTHONUNBUFFERED=1
runs=${SEQNB_RESULTS:-$PWD/results}/runs
mkdir -p "$runs" "$OUT"
before=$(mktemp)
ls "$runs" > "$before"

"${PYTHON:-python3}" -c "import torch; print('torch', torch.__version__, 'cuda:', torch.cuda.is_available() \
and torch.cuda.get_device_name(0))"
status=0
timeout --signal=TERM --kill-after=30 "${minutes}m" "${PYTHON:-python3}" -m seqnb grid "$@" || status=$?
[[ $status -eq 124 ]] && echo "grid stopped after $minutes min, as asked"

# the runs that finished here: a new JSON file, with its arrays
new=$(comm -13 "$before" <(ls "$runs") | grep '\.json$' || true)
files=()
for json in $new; do
    files+=("$json")
    [[ -f "$runs/${json%.json}.npz" ]] && files+=("${json%.json}.npz")
done
if [[ ${#files[@]} -gt 0 ]]; then
    tar -czf "$OUT/results.tar.gz" -C "$runs" "${files[@]}"
fi
echo "${#files[@]} files of $(wc -w <<< "$new") finished runs in \$OUT/results.tar.gz"
exit $(( status == 124 ? 0 : status ))
