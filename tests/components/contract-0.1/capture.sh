#!/usr/bin/env bash
# Builds the five shipped gates as they were under gate contract 0.1 (the
# last commit before 0.2), for the tests that show 0.1 components still load,
# serve and can be rolled back to. The .wasm files next to this script are
# this script's output, never edited; components.toml records what was built.
#
#   tests/components/contract-0.1/capture.sh
set -euo pipefail
cd "$(dirname "$0")"
here="$PWD"
repo="$(git rev-parse --show-toplevel)"
commit=11d56dce2016f72b49908ba3012d22cc37af6f1d
tree="$(mktemp -d)"
trap 'git -C "$repo" worktree remove --force "$tree/src" >/dev/null 2>&1 || true; rm -rf "$tree"' EXIT
git -C "$repo" worktree add --detach "$tree/src" "$commit" >/dev/null
gates=(cargo_test migration_dry_run boot_smoke burn_in manual_confirm)
packages=()
for gate in "${gates[@]}"; do packages+=(-p "gate-${gate//_/-}"); done
(cd "$tree/src" && CARGO_TARGET_DIR="$tree/target" cargo build --locked --profile gates \
    --target wasm32-wasip2 "${packages[@]}")
{
    echo "# Built by capture.sh from commit $commit (sando:gate@0.1.0)"
    echo "commit = \"$commit\""
    echo "command = \"cargo build --locked --profile gates --target wasm32-wasip2 ${packages[*]}\""
    echo "rustc = \"$(rustc --version)\""
    echo
    echo "[sha256]"
} > components.toml
for gate in "${gates[@]}"; do
    cp "$tree/target/wasm32-wasip2/gates/gate_${gate}.wasm" "$here/${gate}.wasm"
    echo "${gate} = \"$(sha256sum "$here/${gate}.wasm" | cut -d' ' -f1)\"" >> components.toml
done
echo "wrote $(ls "$here"/*.wasm | wc -l) components to $here"
