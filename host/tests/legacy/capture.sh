#!/bin/sh
# Captures the old daemon's databases the legacy-import tests read: one per
# seed, each with the old daemon's log files, written by the generator that
# ships with the old schema (`make_legacy_db.py`, Python 3 standard library).
#
#   host/tests/legacy/capture.sh [PATH/TO/make_legacy_db.py]
#
# The files are never edited after capture; `case.toml` says what was run.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
generator=${1:-$here/../../../../shared/legacy/make_legacy_db.py}
for seed in 1 2 3 7 42; do
    dir=$here/seed-$seed
    rm -rf "$dir"
    mkdir -p "$dir"
    python3 "$generator" "$dir/legacy.sqlite" --seed "$seed" --logs "$dir/logs"
    cat > "$dir/case.toml" <<TOML
command = "python3 make_legacy_db.py legacy.sqlite --seed $seed --logs logs"
generator_sha256 = "$(sha256sum "$generator" | cut -d' ' -f1)"
python = "$(python3 --version 2>&1)"
TOML
done
